#include "config.h"

#define G_LOG_DOMAIN "ppnctl"

#include <string.h>

#include "ppn-error.h"
#include "ppn-file-ledger.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppn-ledger.h"
#include "ppn-merkle.h"
#include "ppnctl-builtins.h"
#include "ppnctl-client.h"

/* the audit ledger, offline: from its file and its public key alone,
 * nothing is sent anywhere (docs/ledger.md) */

#define PPNCTL_LEDGER_JSON_MAX (1024 * 1024)

static GBytes *
ppnctl_ledger_read (const gchar *path, GError **error)
{
	gchar *data = NULL;
	gsize len = 0;

	if (!g_file_get_contents (path, &data, &len, error)) {
		g_prefix_error (error, _("Cannot read %s: "), path);
		return NULL;
	}
	return g_bytes_new_take (data, len);
}

static JsonNode *
ppnctl_ledger_read_json (const gchar *path, GError **error)
{
	g_autoptr(GBytes) bytes = ppnctl_ledger_read (path, error);
	g_autoptr(JsonParser) parser = NULL;
	g_autoptr(GError) local = NULL;
	const gchar *data;
	gsize len = 0;

	if (bytes == NULL)
		return NULL;
	data = g_bytes_get_data (bytes, &len);
	if (len > PPNCTL_LEDGER_JSON_MAX || !g_utf8_validate (data, (gssize)len, NULL)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST, _("%s is not a JSON file"), path);
		return NULL;
	}
	parser = json_parser_new_immutable ();
	if (!ppn_json_precheck (data, len, PPN_JSON_MAX_DEPTH, error) ||
	    !json_parser_load_from_data (parser, data, (gssize)len, &local)) {
		if (local != NULL)
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST, "%s", local->message);
		g_prefix_error (error, "%s: ", path);
		return NULL;
	}
	if (json_parser_get_root (parser) == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST, _("%s is empty"), path);
		return NULL;
	}
	return json_node_ref (json_parser_get_root (parser));
}

PpnTreeHead *
ppnctl_ledger_read_head (const gchar *path, GError **error)
{
	g_autoptr(JsonNode) node = ppnctl_ledger_read_json (path, error);
	PpnTreeHead *head;

	if (node == NULL)
		return NULL;
	head = ppn_tree_head_from_json (node, error);
	if (head == NULL)
		g_prefix_error (error, "%s: ", path);
	return head;
}

/* a proof file is the array of base64 hashes, or an object holding it as
 * "proof" (as the API may answer) */
static GPtrArray *
ppnctl_ledger_read_proof (const gchar *path, GError **error)
{
	g_autoptr(JsonNode) node = ppnctl_ledger_read_json (path, error);
	JsonNode *proof_node;
	GPtrArray *proof;

	if (node == NULL)
		return NULL;
	proof_node = node;
	if (JSON_NODE_HOLDS_OBJECT (node) && json_object_has_member (json_node_get_object (node), "proof"))
		proof_node = json_object_get_member (json_node_get_object (node), "proof");
	proof = ppn_merkle_proof_from_json (proof_node, error);
	if (proof == NULL)
		g_prefix_error (error, "%s: ", path);
	return proof;
}

/* LEDGER-DIR-OR-FILE: the file, and the public key beside it unless
 * --key names one; TRUE when it is the one beside it */
static gboolean
ppnctl_ledger_locate (const gchar *arg, const gchar *key_opt, gchar **path, gchar **key_path)
{
	g_autofree gchar *dir = NULL;

	if (g_file_test (arg, G_FILE_TEST_IS_DIR)) {
		*path = g_build_filename (arg, "ledger", NULL);
		dir = g_strdup (arg);
	} else {
		*path = g_strdup (arg);
		dir = g_path_get_dirname (arg);
	}
	if (key_opt != NULL) {
		*key_path = g_strdup (key_opt);
		return FALSE;
	}
	*key_path = g_build_filename (dir, "ledger.pub", NULL);
	return TRUE;
}

static gchar *
ppnctl_ledger_head_time (const PpnTreeHead *head)
{
	return ppn_json_format_time (head->timestamp * 1000);
}

static gchar *
ppnctl_ledger_root (const PpnTreeHead *head)
{
	return g_base64_encode (head->root_hash, PPN_MERKLE_HASH_SIZE);
}

static void
ppnctl_ledger_print_result (const gchar *path,
			    const gchar *key_path,
			    gboolean key_beside,
			    const PpnTreeHead *published,
			    const PpnLedgerVerifyResult *result,
			    gboolean ok)
{
	if (ppnctl_output_json ()) {
		g_autoptr(JsonBuilder) b = json_builder_new ();
		g_autoptr(JsonNode) root = NULL;

		json_builder_begin_object (b);
		json_builder_set_member_name (b, "ledger");
		json_builder_add_string_value (b, path);
		json_builder_set_member_name (b, "public_key");
		json_builder_add_string_value (b, key_path);
		json_builder_set_member_name (b, "verified");
		json_builder_add_boolean_value (b, ok);
		json_builder_set_member_name (b, "entries");
		json_builder_add_int_value (b, (gint64)result->entries);
		json_builder_set_member_name (b, "tree_heads");
		json_builder_add_int_value (b, (gint64)result->tree_heads);
		json_builder_set_member_name (b, "newest_head");
		if (result->newest_head != NULL)
			json_builder_add_value (b, ppn_tree_head_to_json (result->newest_head));
		else
			json_builder_add_null_value (b);
		if (!ok) {
			json_builder_set_member_name (b, "problem");
			json_builder_add_string_value (b, ppn_ledger_problem_to_string (result->problem));
			json_builder_set_member_name (b, "bad_index");
			if (result->bad_index != PPN_LEDGER_NO_INDEX)
				json_builder_add_int_value (b, (gint64)result->bad_index);
			else
				json_builder_add_null_value (b);
			json_builder_set_member_name (b, "bad_offset");
			json_builder_add_int_value (b, (gint64)result->bad_offset);
			json_builder_set_member_name (b, "message");
			json_builder_add_string_value (b, result->message);
		}
		json_builder_end_object (b);
		root = json_builder_get_root (b);
		ppnctl_print_json (root);
		return;
	}
	{
		g_autofree gchar *key = key_beside ? g_strdup_printf (_("%s (beside the ledger)"), key_path)
						   : g_strdup (key_path);
		g_autofree gchar *entries =
			g_strdup_printf (ok ? _("%" G_GUINT64_FORMAT " verified")
					    : _("%" G_GUINT64_FORMAT " verified before the problem"),
					 result->entries);
		g_autofree gchar *heads =
			g_strdup_printf (_("%" G_GUINT64_FORMAT " verified"), result->tree_heads);
		g_autofree gchar *newest = NULL;
		g_autofree gchar *root = NULL;
		g_autofree gchar *published_line = NULL;

		if (result->newest_head != NULL) {
			g_autofree gchar *when = ppnctl_ledger_head_time (result->newest_head);
			newest = g_strdup_printf (_("tree size %" G_GUINT64_FORMAT ", signed %s"),
						  result->newest_head->tree_size, when);
			root = ppnctl_ledger_root (result->newest_head);
		}
		if (published != NULL && ok)
			published_line = g_strdup_printf (
				_("holds the tree of %" G_GUINT64_FORMAT " entries"), published->tree_size);
		ppnctl_print_fields (_("Ledger"), path, _("Public key"), key, _("Entries"), entries,
				     _("Tree heads"), heads, _("Newest head"),
				     newest != NULL ? newest : _("none"), _("Root hash"), root,
				     /* without a published head the list ends here */
				     published != NULL ? _("Published head") : NULL, published_line, NULL);
	}
}

static gboolean
ppnctl_ledger_verify_file (const gchar *arg,
			   const gchar *key_opt,
			   const gchar *head_path,
			   gboolean print,
			   PpnLedgerVerifyResult *result,
			   GError **error)
{
	g_autofree gchar *path = NULL;
	g_autofree gchar *key_path = NULL;
	gboolean key_beside = ppnctl_ledger_locate (arg, key_opt, &path, &key_path);
	g_autoptr(GBytes) key = ppnctl_ledger_read (key_path, error);
	g_autoptr(PpnTreeHead) published = NULL;
	gboolean ok;

	if (key == NULL)
		return FALSE;
	if (head_path != NULL) {
		published = ppnctl_ledger_read_head (head_path, error);
		if (published == NULL)
			return FALSE;
	}
	ok = ppn_file_ledger_verify (path, key, published, result, error);
	/* a ledger that could not be read has nothing to show */
	if (print && (ok || result->problem != PPN_LEDGER_PROBLEM_IO))
		ppnctl_ledger_print_result (path, key_path, key_beside, published, result, ok);
	if (!ok)
		g_prefix_error (error, "%s: ", path);
	return ok;
}

static gboolean
ppnctl_ledger_verify (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autofree gchar *key_opt = NULL;
	g_autofree gchar *head_path = NULL;
	const GOptionEntry entries[] = {
		{"key", 0, 0, G_OPTION_ARG_FILENAME, &key_opt,
		 N_("The ledger's public key, PEM (default: ledger.pub beside the ledger)"), N_("FILE")},
		{"tree-head", 0, 0, G_OPTION_ARG_FILENAME, &head_path,
		 N_("A tree head published earlier (JSON): the ledger must still hold its tree"), N_("FILE")},
		{NULL}};
	g_autoptr(GOptionContext) context = ppnctl_option_context_new (
		_("LEDGER-DIR-OR-FILE"),
		_("Verify the audit ledger offline: every record's checksum, the order of the entries, every "
		  "tree head's signature and root. On failure the first bad entry is named."),
		entries);
	g_auto(PpnLedgerVerifyResult) result = {0};

	if (!ppnctl_option_context_parse (context, &argc, &argv, error))
		return FALSE;
	if (argc != 2) {
		ppnctl_usage_error (error, _("'ppnctl ledger verify' takes one ledger directory or file"));
		return FALSE;
	}
	return ppnctl_ledger_verify_file (argv[1], key_opt, head_path, TRUE, &result, error);
}

static gboolean
ppnctl_ledger_show_head (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autofree gchar *key_opt = NULL;
	const GOptionEntry entries[] = {
		{"key", 0, 0, G_OPTION_ARG_FILENAME, &key_opt,
		 N_("The ledger's public key, PEM (default: ledger.pub beside the ledger)"), N_("FILE")},
		{NULL}};
	g_autoptr(GOptionContext) context = ppnctl_option_context_new (
		_("LEDGER-DIR-OR-FILE"),
		_("Print the newest tree head of the audit ledger as JSON, once the whole ledger verified."),
		entries);
	g_auto(PpnLedgerVerifyResult) result = {0};
	g_autoptr(JsonNode) node = NULL;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error))
		return FALSE;
	if (argc != 2) {
		ppnctl_usage_error (error, _("'ppnctl ledger show-head' takes one ledger directory or file"));
		return FALSE;
	}
	if (!ppnctl_ledger_verify_file (argv[1], key_opt, NULL, FALSE, &result, error))
		return FALSE;
	if (result.newest_head == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_NOT_FOUND,
			     _("%s: the ledger is empty: no tree head yet"), argv[1]);
		return FALSE;
	}
	node = ppn_tree_head_to_json (result.newest_head);
	ppnctl_print_json (node);
	return TRUE;
}

static gboolean
ppnctl_ledger_check_proof_args (const gchar *command,
				int argc,
				int want,
				const gchar *proof,
				const gchar *key,
				GError **error)
{
	if (argc != want + 1) {
		ppnctl_usage_error (error, _("Wrong number of arguments to 'ppnctl ledger %s'"), command);
		return FALSE;
	}
	if (proof == NULL || key == NULL) {
		ppnctl_usage_error (error, _("--proof FILE and --key FILE are required"));
		return FALSE;
	}
	return TRUE;
}

static gboolean
ppnctl_ledger_consistency (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autofree gchar *proof_path = NULL;
	g_autofree gchar *key_path = NULL;
	const GOptionEntry entries[] = {
		{"proof", 0, 0, G_OPTION_ARG_FILENAME, &proof_path,
		 N_("The consistency proof: a JSON array of base64 hashes (required)"), N_("FILE")},
		{"key", 0, 0, G_OPTION_ARG_FILENAME, &key_path, N_("The ledger's public key, PEM (required)"),
		 N_("FILE")},
		{NULL}};
	g_autoptr(GOptionContext) context = ppnctl_option_context_new (
		_("OLD-HEAD.json NEW-HEAD.json"),
		_("Verify offline that the ledger only grew between two signed tree heads."), entries);
	g_autoptr(PpnTreeHead) old_head = NULL;
	g_autoptr(PpnTreeHead) new_head = NULL;
	g_autoptr(GPtrArray) proof = NULL;
	g_autoptr(GBytes) key = NULL;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error) ||
	    !ppnctl_ledger_check_proof_args ("consistency", argc, 2, proof_path, key_path, error))
		return FALSE;
	old_head = ppnctl_ledger_read_head (argv[1], error);
	new_head = old_head != NULL ? ppnctl_ledger_read_head (argv[2], error) : NULL;
	proof = new_head != NULL ? ppnctl_ledger_read_proof (proof_path, error) : NULL;
	key = proof != NULL ? ppnctl_ledger_read (key_path, error) : NULL;
	if (key == NULL || !ppn_ledger_verify_consistency (old_head, new_head, key, proof, error))
		return FALSE;
	if (ppnctl_output_json ()) {
		g_autoptr(JsonObject) obj = json_object_new ();
		g_autoptr(JsonNode) node = NULL;
		json_object_set_boolean_member (obj, "consistent", TRUE);
		json_object_set_int_member (obj, "old_tree_size", (gint64)old_head->tree_size);
		json_object_set_int_member (obj, "new_tree_size", (gint64)new_head->tree_size);
		node = json_node_init_object (json_node_alloc (), obj);
		ppnctl_print_json (node);
	} else {
		g_print (_("Consistent: the signed tree of %" G_GUINT64_FORMAT
			    " entries extends the signed tree of %" G_GUINT64_FORMAT " entries.\n"),
			 new_head->tree_size, old_head->tree_size);
	}
	return TRUE;
}

static gboolean
ppnctl_ledger_inclusion (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autofree gchar *proof_path = NULL;
	g_autofree gchar *key_path = NULL;
	g_autofree gchar *head_path = NULL;
	gint64 index = -1;
	const GOptionEntry entries[] = {
		{"index", 0, 0, G_OPTION_ARG_INT64, &index, N_("The entry's index in the ledger (required)"),
		 N_("N")},
		{"tree-head", 0, 0, G_OPTION_ARG_FILENAME, &head_path,
		 N_("The signed tree head to prove against, JSON (required)"), N_("FILE")},
		{"proof", 0, 0, G_OPTION_ARG_FILENAME, &proof_path,
		 N_("The inclusion proof: a JSON array of base64 hashes (required)"), N_("FILE")},
		{"key", 0, 0, G_OPTION_ARG_FILENAME, &key_path, N_("The ledger's public key, PEM (required)"),
		 N_("FILE")},
		{NULL}};
	g_autoptr(GOptionContext) context = ppnctl_option_context_new (
		_("ENTRY-FILE"),
		_("Verify offline that an entry (the exact bytes in ENTRY-FILE) is in the ledger under a "
		  "signed tree head."),
		entries);
	g_autoptr(PpnTreeHead) head = NULL;
	g_autoptr(GPtrArray) proof = NULL;
	g_autoptr(GBytes) key = NULL;
	g_autoptr(GBytes) entry = NULL;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error) ||
	    !ppnctl_ledger_check_proof_args ("inclusion", argc, 1, proof_path, key_path, error))
		return FALSE;
	if (index < 0 || head_path == NULL) {
		ppnctl_usage_error (error, _("--index N (0 or more) and --tree-head FILE are required"));
		return FALSE;
	}
	entry = ppnctl_ledger_read (argv[1], error);
	head = entry != NULL ? ppnctl_ledger_read_head (head_path, error) : NULL;
	proof = head != NULL ? ppnctl_ledger_read_proof (proof_path, error) : NULL;
	key = proof != NULL ? ppnctl_ledger_read (key_path, error) : NULL;
	if (key == NULL || !ppn_ledger_verify_inclusion (head, key, entry, (guint64)index, proof, error))
		return FALSE;
	if (ppnctl_output_json ()) {
		g_autoptr(JsonObject) obj = json_object_new ();
		g_autoptr(JsonNode) node = NULL;
		json_object_set_boolean_member (obj, "included", TRUE);
		json_object_set_int_member (obj, "index", index);
		json_object_set_int_member (obj, "tree_size", (gint64)head->tree_size);
		node = json_node_init_object (json_node_alloc (), obj);
		ppnctl_print_json (node);
	} else {
		g_print (_("Included: entry %" G_GINT64_FORMAT " is in the signed tree of %" G_GUINT64_FORMAT
			   " entries.\n"),
			 index, head->tree_size);
	}
	return TRUE;
}

static const PpnctlCommand ledger_commands[] = {
	{"verify", ppnctl_ledger_verify, N_("Verify a ledger file and its tree heads")},
	{"show-head", ppnctl_ledger_show_head, N_("Print the newest tree head of a verified ledger")},
	{"consistency", ppnctl_ledger_consistency, N_("Verify a consistency proof between two tree heads")},
	{"inclusion", ppnctl_ledger_inclusion, N_("Verify an inclusion proof of one entry")},
	{NULL, NULL, NULL},
};

gboolean
ppnctl_builtin_ledger (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	return ppnctl_dispatch ("ledger", ledger_commands, argc, argv, cancellable, error);
}
