#include "config.h"

#define G_LOG_DOMAIN "ppnctl"

#include <string.h>

#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppn-ledger.h"
#include "ppn-merkle.h"
#include "ppnctl-builtins.h"
#include "ppnctl-client.h"

/* `ppnctl audit`: a tenant's own audit entries, and the proof that each
 * is in the ledger every other tenant's entries are in too: the tree head
 * is checked against the ledger's public key, each entry against the
 * head, and the head against one published earlier. */

static gchar *opt_key;
static gchar *opt_tree_head;
static gchar *opt_save_head;
static gboolean opt_all;
static gint opt_limit;

static const GOptionEntry audit_entries[] = {
	{"key", 'k', 0, G_OPTION_ARG_FILENAME, &opt_key,
	 N_("Check every entry against the ledger's public key in FILE (PEM, as published by the operator)"),
	 N_("FILE")},
	{"tree-head", 0, 0, G_OPTION_ARG_FILENAME, &opt_tree_head,
	 N_("Also prove the ledger only grew since the tree head saved in FILE"), N_("FILE")},
	{"save-head", 0, 0, G_OPTION_ARG_FILENAME, &opt_save_head,
	 N_("Save the verified tree head to FILE, for a later --tree-head"), N_("FILE")},
	{"all", 'a', 0, G_OPTION_ARG_NONE, &opt_all, N_("Fetch every page, not just the first"), NULL},
	{"limit", 'l', 0, G_OPTION_ARG_INT, &opt_limit, N_("Entries per page (1-500, default 100)"), N_("N")},
	{NULL}};

static gboolean
ppnctl_audit_fail (GError **error, const gchar *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
ppnctl_audit_fail (GError **error, const gchar *format, ...)
{
	va_list args;
	g_autofree gchar *msg = NULL;

	va_start (args, format);
	msg = g_strdup_vprintf (format, args);
	va_end (args);
	/* exit 6, like every proof that does not verify */
	g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST, _("Audit verification failed: %s"), msg);
	return FALSE;
}

/* one entry: its bytes hash to a leaf that the proof puts under the
 * verified head's root */
static gboolean
ppnctl_audit_check_entry (JsonObject *item, const PpnTreeHead *head, GError **error)
{
	gint64 index = json_object_get_int_member_with_default (item, "index", -1);
	const gchar *leaf_b64 = json_object_get_string_member_with_default (item, "leaf", NULL);
	g_autoptr(GPtrArray) proof = NULL;
	g_autofree guchar *leaf = NULL;
	g_autoptr(JsonNode) parsed = NULL;
	g_autoptr(JsonGenerator) gen = json_generator_new ();
	g_autofree gchar *a = NULL, *b = NULL;
	guint8 hash[PPN_MERKLE_HASH_SIZE];
	gsize len = 0;

	if (index < 0 || leaf_b64 == NULL || !json_object_has_member (item, "inclusion_proof") ||
	    !json_object_has_member (item, "entry"))
		return ppnctl_audit_fail (error, _("an entry of the answer lacks its index, leaf or proof"));
	proof = ppn_merkle_proof_from_json (json_object_get_member (item, "inclusion_proof"), error);
	if (proof == NULL)
		return FALSE;
	leaf = g_base64_decode (leaf_b64, &len);
	ppn_merkle_leaf_hash (leaf, len, hash);
	if (!ppn_merkle_verify_inclusion (hash, (guint64)index, head->tree_size, proof, head->root_hash, error)) {
		g_prefix_error (error, _("Audit verification failed: entry %" G_GINT64_FORMAT ": "), index);
		return FALSE;
	}
	/* what is shown is what was proven */
	parsed = ppn_json_parse_object ((const gchar *)leaf, len, 8, error);
	if (parsed == NULL)
		return FALSE;
	json_generator_set_root (gen, parsed);
	a = json_generator_to_data (gen, NULL);
	json_generator_set_root (gen, json_object_get_member (item, "entry"));
	b = json_generator_to_data (gen, NULL);
	if (g_strcmp0 (a, b) != 0 ||
	    json_object_get_int_member_with_default (json_node_get_object (parsed), "index", -1) != index)
		return ppnctl_audit_fail (error, _("entry %" G_GINT64_FORMAT " is not the leaf that was proven"),
					  index);
	return TRUE;
}

static gboolean
ppnctl_audit_check_consistency (PpnctlClient *client,
				const PpnTreeHead *old,
				const PpnTreeHead *head,
				GBytes *key,
				GCancellable *cancellable,
				GError **error)
{
	g_autofree gchar *path = NULL;
	g_autoptr(JsonNode) answer = NULL;
	g_autoptr(GPtrArray) proof = NULL;
	JsonObject *obj;

	if (!ppn_tree_head_verify (old, key, error)) {
		g_prefix_error (error, "%s: ", opt_tree_head);
		return FALSE;
	}
	if (old->tree_size > head->tree_size)
		return ppnctl_audit_fail (error,
					  _("the ledger shrank: the saved head has %" G_GUINT64_FORMAT
					    " entries, the newest %" G_GUINT64_FORMAT),
					  old->tree_size, head->tree_size);
	if (old->tree_size == head->tree_size) {
		if (memcmp (old->root_hash, head->root_hash, PPN_MERKLE_HASH_SIZE) != 0)
			return ppnctl_audit_fail (error, _("two signed heads of the same size disagree: the ledger"
							   " was rewritten"));
		return TRUE;
	}
	path = g_strdup_printf ("/v1/ledger/consistency?first=%" G_GUINT64_FORMAT "&second=%" G_GUINT64_FORMAT,
				old->tree_size, head->tree_size);
	if (!ppnctl_client_call (client, "GET", path, NULL, &answer, cancellable, error))
		return FALSE;
	obj = answer != NULL && JSON_NODE_HOLDS_OBJECT (answer) ? json_node_get_object (answer) : NULL;
	if (obj == NULL || !json_object_has_member (obj, "proof"))
		return ppnctl_audit_fail (error, _("the server gave no consistency proof"));
	proof = ppn_merkle_proof_from_json (json_object_get_member (obj, "proof"), error);
	if (proof == NULL)
		return FALSE;
	if (!ppn_merkle_verify_consistency (old->tree_size, head->tree_size, old->root_hash, head->root_hash, proof,
					    error)) {
		g_prefix_error (error, _("Audit verification failed: the ledger did not only grow since the saved"
					 " head: "));
		return FALSE;
	}
	return TRUE;
}

static gboolean
ppnctl_audit_save_head (const PpnTreeHead *head, GError **error)
{
	g_autoptr(JsonNode) node = ppn_tree_head_to_json (head);
	gsize len = 0;
	g_autofree gchar *data = ppn_json_to_data (node, &len);

	return g_file_set_contents (opt_save_head, data, (gssize)len, error);
}

/* a table cell: what the entry has, "-" for a null or missing member */
static const gchar *
ppnctl_audit_cell (JsonObject *entry, const gchar *member)
{
	const gchar *value = ppnctl_json_string (entry, member);

	return value != NULL ? value : "-";
}

static void
ppnctl_audit_add_rows (PpnctlTable *table, JsonArray *entries)
{
	for (guint i = 0; i < json_array_get_length (entries); i++) {
		JsonObject *item = json_array_get_object_element (entries, i);
		JsonObject *entry = json_object_get_object_member (item, "entry");
		g_autofree gchar *index = ppnctl_json_int (item, "index");

		ppnctl_table_add_row (table, index, ppnctl_audit_cell (entry, "time"), ppnctl_audit_cell (entry, "actor"),
				      ppnctl_audit_cell (entry, "op"), ppnctl_audit_cell (entry, "vm_id"),
				      ppnctl_audit_cell (entry, "outcome"), ppnctl_audit_cell (entry, "error"),
				      ppnctl_audit_cell (entry, "request_id"), NULL);
	}
}

gboolean
ppnctl_builtin_audit (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autoptr(GOptionContext) context = ppnctl_option_context_new (
		NULL, _("List the tenant's own audit entries, and with --key prove each is in the signed ledger."),
		audit_entries);
	g_autoptr(PpnctlClient) client = NULL;
	g_autoptr(GBytes) key = NULL;
	g_autoptr(PpnTreeHead) old = NULL;
	g_autoptr(PpnTreeHead) first_head = NULL;
	g_autoptr(PpnctlTable) table = NULL;
	g_autoptr(JsonArray) all = json_array_new ();
	g_autofree gchar *page_token = NULL;
	guint verified = 0;

	opt_limit = 100;
	if (!ppnctl_option_context_parse (context, &argc, &argv, error))
		return FALSE;
	if (argc != 1) {
		ppnctl_usage_error (error, _("'ppnctl audit' takes no arguments"));
		return FALSE;
	}
	if (opt_limit < 1 || opt_limit > 500) {
		ppnctl_usage_error (error, _("--limit must be from 1 to 500"));
		return FALSE;
	}
	if ((opt_tree_head != NULL || opt_save_head != NULL) && opt_key == NULL) {
		ppnctl_usage_error (error, _("--tree-head and --save-head need --key: an unverified head proves nothing"));
		return FALSE;
	}
	if (opt_key != NULL) {
		gchar *data = NULL;
		gsize len = 0;
		if (!g_file_get_contents (opt_key, &data, &len, error))
			return FALSE;
		key = g_bytes_new_take (data, len);
	}
	if (opt_tree_head != NULL && (old = ppnctl_ledger_read_head (opt_tree_head, error)) == NULL)
		return FALSE;
	client = ppnctl_client_new (error);
	if (client == NULL)
		return FALSE;

	do {
		g_autofree gchar *path = NULL;
		g_autoptr(JsonNode) answer = NULL;
		g_autoptr(PpnTreeHead) head = NULL;
		JsonObject *obj;
		JsonArray *entries = NULL;
		JsonNode *head_node;

		path = page_token != NULL ? g_strdup_printf ("/v1/audit?limit=%d&page_token=%s", opt_limit, page_token)
					  : g_strdup_printf ("/v1/audit?limit=%d", opt_limit);
		g_clear_pointer (&page_token, g_free);
		if (!ppnctl_client_call (client, "GET", path, NULL, &answer, cancellable, error))
			return FALSE;
		obj = answer != NULL && JSON_NODE_HOLDS_OBJECT (answer) ? json_node_get_object (answer) : NULL;
		if (obj == NULL || !ppn_json_get_array (obj, "entries", TRUE, &entries, NULL)) {
			g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INTERNAL,
					     _("The server's answer holds no audit entries"));
			return FALSE;
		}
		head_node = json_object_get_member (obj, "tree_head");
		if (key != NULL && head_node != NULL && !JSON_NODE_HOLDS_NULL (head_node)) {
			head = ppn_tree_head_from_json (head_node, error);
			if (head == NULL || !ppn_tree_head_verify (head, key, error)) {
				g_prefix_error (error, _("Audit verification failed: the tree head: "));
				return FALSE;
			}
			for (guint i = 0; i < json_array_get_length (entries); i++) {
				if (!ppnctl_audit_check_entry (json_array_get_object_element (entries, i), head, error))
					return FALSE;
				verified++;
			}
			if (first_head == NULL) {
				if (old != NULL &&
				    !ppnctl_audit_check_consistency (client, old, head, key, cancellable, error))
					return FALSE;
				first_head = ppn_tree_head_copy (head);
			}
		} else if (key != NULL && json_array_get_length (entries) > 0) {
			return ppnctl_audit_fail (error, _("entries came without a tree head"));
		} else if (old != NULL) {
			/* no head at all, where one was seen before: rolled back */
			return ppnctl_audit_fail (error,
						  _("the server shows no tree head, but the saved one has %" G_GUINT64_FORMAT
						    " entries: the ledger was rolled back or replaced"),
						  old->tree_size);
		}
		for (guint i = 0; i < json_array_get_length (entries); i++)
			json_array_add_element (all, json_node_copy (json_array_get_element (entries, i)));
		if (opt_all && json_object_has_member (obj, "next_page_token"))
			page_token = g_strdup (json_object_get_string_member (obj, "next_page_token"));
	} while (page_token != NULL);

	if (opt_save_head != NULL && first_head != NULL && !ppnctl_audit_save_head (first_head, error))
		return FALSE;
	if (ppnctl_output_json ()) {
		g_autoptr(JsonObject) out = json_object_new ();
		g_autoptr(JsonNode) node = json_node_new (JSON_NODE_OBJECT);
		json_object_set_array_member (out, "entries", json_array_ref (all));
		/* proven: a head checked, and every entry under it */
		json_object_set_boolean_member (out, "verified", key != NULL && first_head != NULL);
		if (first_head != NULL)
			json_object_set_member (out, "tree_head", ppn_tree_head_to_json (first_head));
		json_node_set_object (node, g_steal_pointer (&out));
		ppnctl_print_json (node);
		return TRUE;
	}
	table = ppnctl_table_new (_("INDEX"), _("TIME"), _("ACTOR"), _("OP"), _("VM"), _("OUTCOME"), _("ERROR"),
				  _("REQUEST"), NULL);
	ppnctl_audit_add_rows (table, all);
	ppnctl_table_print (table);
	if (key == NULL)
		g_print (_("Not verified: pass --key with the ledger's public key to prove these entries.\n"));
	else if (first_head != NULL)
		g_print (_("Verified %u entries against the signed tree head of %" G_GUINT64_FORMAT " entries%s.\n"),
			 verified, first_head->tree_size, old != NULL ? _(", which extends the saved head") : "");
	return TRUE;
}
