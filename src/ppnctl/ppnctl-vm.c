#include "config.h"

#define G_LOG_DOMAIN "ppnctl"

#include <string.h>

#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppnctl-builtins.h"
#include "ppnctl-client.h"

/* a misbehaving server must not keep "vm list" paging forever */
#define PPNCTL_MAX_PAGES 10000
#define PPNCTL_LIMIT_MAX 500

/* "127.0.0.1:20000->80/tcp", "[::1]:20000->80/tcp", or "80/tcp" until placed */
static gchar *
ppnctl_vm_format_forwards (JsonObject *vm, const gchar *separator)
{
	JsonArray *forwards = NULL;
	g_autoptr(GString) s = g_string_new (NULL);

	if (!ppn_json_get_array (vm, "port_forwards", FALSE, &forwards, NULL) || forwards == NULL ||
	    json_array_get_length (forwards) == 0)
		return g_strdup ("-");
	for (guint i = 0; i < json_array_get_length (forwards); i++) {
		JsonNode *el = json_array_get_element (forwards, i);
		JsonObject *fwd;
		const gchar *proto, *address;
		g_autofree gchar *guest = NULL;
		g_autofree gchar *host = NULL;

		if (!JSON_NODE_HOLDS_OBJECT (el))
			continue;
		fwd = json_node_get_object (el);
		proto = ppnctl_json_string (fwd, "proto");
		address = ppnctl_json_string (fwd, "host_address");
		guest = ppnctl_json_int (fwd, "guest_port");
		host = ppnctl_json_int (fwd, "host_port");
		if (s->len > 0)
			g_string_append (s, separator);
		if (address != NULL && g_strcmp0 (host, "-") != 0) {
			if (strchr (address, ':') != NULL)
				g_string_append_printf (s, "[%s]:%s->", address, host);
			else
				g_string_append_printf (s, "%s:%s->", address, host);
		}
		g_string_append_printf (s, "%s/%s", guest, proto != NULL ? proto : "tcp");
	}
	return g_string_free (g_steal_pointer (&s), FALSE);
}

static gchar *
ppnctl_vm_format_memory (JsonObject *vm)
{
	g_autofree gchar *mib = ppnctl_json_int (vm, "memory_mib");

	if (g_strcmp0 (mib, "-") == 0)
		return g_steal_pointer (&mib);
	return g_strdup_printf (_("%sMiB"), mib);
}

static gboolean
ppnctl_vm_object (JsonNode *node, JsonObject **out, GError **error)
{
	if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INTERNAL,
				     _("The server's answer holds no VM"));
		return FALSE;
	}
	*out = json_node_get_object (node);
	return TRUE;
}

static void
ppnctl_vm_print (JsonObject *vm)
{
	g_autofree gchar *vcpus = ppnctl_json_int (vm, "vcpus");
	g_autofree gchar *memory = ppnctl_vm_format_memory (vm);
	g_autofree gchar *forwards = ppnctl_vm_format_forwards (vm, "\n");

	ppnctl_print_fields (_("ID"), ppnctl_json_string (vm, "id"),
			     _("Name"), ppnctl_json_string (vm, "name"),
			     _("Image"), ppnctl_json_string (vm, "image"),
			     _("State"), ppnctl_json_string (vm, "state"),
			     _("Node"), ppnctl_json_string (vm, "node"),
			     _("vCPUs"), vcpus,
			     _("Memory"), memory,
			     _("Forwards"), forwards,
			     _("Created"), ppnctl_json_string (vm, "created_at"),
			     NULL);
}

/* PORT, PORT/tcp or PORT/udp */
static gboolean
ppnctl_vm_parse_forward (const gchar *spec, GPtrArray *forwards, GError **error)
{
	g_auto(GStrv) parts = g_strsplit (spec, "/", 2);
	guint64 port = 0;
	const gchar *proto = parts[0] != NULL && parts[1] != NULL ? parts[1] : "tcp";

	if (parts[0] == NULL || !g_ascii_string_to_unsigned (parts[0], 10, 1, 65535, &port, NULL) ||
	    (g_strcmp0 (proto, "tcp") != 0 && g_strcmp0 (proto, "udp") != 0)) {
		ppnctl_usage_error (error, _("--forward '%s' is not of the form PORT[/tcp|udp] (PORT 1-65535)"),
				    spec);
		return FALSE;
	}
	g_ptr_array_add (forwards, ppn_forward_new ((guint16)port, proto));
	return TRUE;
}

static gboolean
ppnctl_vm_create (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autofree gchar *image = NULL;
	g_auto(GStrv) forward_specs = NULL;
	gint vcpus = -1, memory = -1; /* -1: not given, the server's default */
	const GOptionEntry entries[] = {
		{"image", 0, 0, G_OPTION_ARG_STRING, &image, N_("Image from the catalog (required)"), N_("IMG")},
		{"vcpus", 0, 0, G_OPTION_ARG_INT, &vcpus, N_("Virtual CPUs (server default 1)"), N_("N")},
		{"memory", 0, 0, G_OPTION_ARG_INT, &memory, N_("Memory in MiB (server default 256)"), N_("MIB")},
		{"forward", 0, 0, G_OPTION_ARG_STRING_ARRAY, &forward_specs,
		 N_("Forward a host port to guest PORT (repeatable)"), N_("PORT[/tcp|udp]")},
		{NULL}};
	g_autoptr(GOptionContext) context =
		ppnctl_option_context_new (_("NAME --image IMG"), _("Create a VM and wait until it runs."), entries);
	g_autoptr(GPtrArray) forwards = ppn_forwards_new ();
	g_autoptr(GPtrArray) checked = NULL;
	g_autoptr(JsonObject) body = json_object_new ();
	g_autoptr(JsonNode) body_node = NULL;
	g_autoptr(JsonNode) forwards_node = NULL;
	g_autoptr(JsonNode) answer = NULL;
	g_autoptr(PpnctlClient) client = NULL;
	JsonObject *vm;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error))
		return FALSE;
	if (argc != 2) {
		ppnctl_usage_error (error, _("'ppnctl vm create' takes one NAME"));
		return FALSE;
	}
	if (!ppn_name_validate ("NAME", argv[1], error)) {
		ppnctl_error_to_usage (error);
		return FALSE;
	}
	if (image == NULL || image[0] == '\0') {
		ppnctl_usage_error (error, _("--image IMG is required; 'ppnctl images' lists the catalog"));
		return FALSE;
	}
	if ((vcpus != -1 && vcpus < 1) || (memory != -1 && memory < 1)) {
		ppnctl_usage_error (error, _("--vcpus and --memory must be positive"));
		return FALSE;
	}
	for (guint i = 0; forward_specs != NULL && forward_specs[i] != NULL; i++) {
		if (!ppnctl_vm_parse_forward (forward_specs[i], forwards, error))
			return FALSE;
	}
	/* the same checks as the server's, so a duplicate is a usage error */
	forwards_node = ppn_forwards_to_json (forwards, FALSE);
	checked = ppn_forwards_from_json (json_node_get_array (forwards_node), G_MAXUINT, FALSE, error);
	if (checked == NULL) {
		ppnctl_error_to_usage (error);
		return FALSE;
	}

	json_object_set_string_member (body, "name", argv[1]);
	json_object_set_string_member (body, "image", image);
	if (vcpus != -1)
		json_object_set_int_member (body, "vcpus", vcpus);
	if (memory != -1)
		json_object_set_int_member (body, "memory_mib", memory);
	if (forwards->len > 0)
		json_object_set_member (body, "port_forwards", g_steal_pointer (&forwards_node));
	body_node = json_node_init_object (json_node_alloc (), body);

	client = ppnctl_client_new (error);
	if (client == NULL ||
	    !ppnctl_client_call (client, "POST", "/v1/vms", body_node, &answer, cancellable, error) ||
	    !ppnctl_vm_object (answer, &vm, error))
		return FALSE;
	if (ppnctl_output_json ()) {
		ppnctl_print_json (answer);
		return TRUE;
	}
	ppnctl_vm_print (vm);
	/* the create's audit record, for `ppnctl audit` later */
	if (json_object_has_member (vm, "receipt") && JSON_NODE_HOLDS_OBJECT (json_object_get_member (vm, "receipt"))) {
		g_autofree gchar *index =
			ppnctl_json_int (json_object_get_object_member (vm, "receipt"), "ledger_index");
		g_print (_("Receipt: ledger entry %s (ppnctl audit --key ledger.pub proves it)\n"), index);
	}
	return TRUE;
}

static gboolean
ppnctl_vm_list (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	gint limit = -1; /* -1: all, page after page */
	const GOptionEntry entries[] = {
		{"limit", 0, 0, G_OPTION_ARG_INT, &limit,
		 N_("Show at most N VMs (1-500), one page; default all"), N_("N")},
		{NULL}};
	g_autoptr(GOptionContext) context =
		ppnctl_option_context_new (NULL, _("List the tenant's VMs, oldest first."), entries);
	g_autoptr(PpnctlClient) client = NULL;
	g_autoptr(JsonArray) all = json_array_new ();
	g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	g_autofree gchar *page_token = NULL;
	g_autoptr(JsonNode) last = NULL;
	g_autoptr(PpnctlTable) table = NULL;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error))
		return FALSE;
	if (argc != 1) {
		ppnctl_usage_error (error, _("'ppnctl vm list' takes no arguments"));
		return FALSE;
	}
	if (limit != -1 && (limit < 1 || limit > PPNCTL_LIMIT_MAX)) {
		ppnctl_usage_error (error, _("--limit must be from 1 to %d"), PPNCTL_LIMIT_MAX);
		return FALSE;
	}
	client = ppnctl_client_new (error);
	if (client == NULL)
		return FALSE;
	for (guint page = 0;; page++) {
		g_autoptr(GString) path = g_string_new ("/v1/vms");
		g_autoptr(JsonNode) answer = NULL;
		JsonArray *vms = NULL;
		const gchar *next = NULL;

		if (page >= PPNCTL_MAX_PAGES) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL,
				     _("The server keeps answering with more pages after %d"), PPNCTL_MAX_PAGES);
			return FALSE;
		}
		if (limit != -1)
			g_string_append_printf (path, "?limit=%d", limit);
		if (page_token != NULL) {
			g_autofree gchar *escaped = g_uri_escape_string (page_token, NULL, FALSE);
			g_string_append_printf (path, "%cpage_token=%s", limit != -1 ? '&' : '?', escaped);
		}
		if (!ppnctl_client_call (client, "GET", path->str, NULL, &answer, cancellable, error))
			return FALSE;
		if (answer == NULL || !JSON_NODE_HOLDS_OBJECT (answer) ||
		    !ppn_json_get_array (json_node_get_object (answer), "vms", TRUE, &vms, NULL) ||
		    !ppn_json_get_string (json_node_get_object (answer), "next_page_token", FALSE, &next, NULL)) {
			g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INTERNAL,
					     _("The server's answer holds no list of VMs"));
			return FALSE;
		}
		for (guint i = 0; i < json_array_get_length (vms); i++)
			json_array_add_element (all, json_node_copy (json_array_get_element (vms, i)));
		/* one page only with --limit: what the server said, next_page_token included */
		if (limit != -1 || next == NULL || next[0] == '\0') {
			g_clear_pointer (&last, json_node_unref);
			last = g_steal_pointer (&answer);
			break;
		}
		if (!g_hash_table_add (seen, g_strdup (next))) {
			g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INTERNAL,
					     _("The server answered the same page token twice"));
			return FALSE;
		}
		g_free (page_token);
		page_token = g_strdup (next);
	}

	if (ppnctl_output_json ()) {
		if (limit != -1) {
			ppnctl_print_json (last);
		} else {
			g_autoptr(JsonObject) result = json_object_new ();
			g_autoptr(JsonNode) node = NULL;
			json_object_set_array_member (result, "vms", json_array_ref (all));
			node = json_node_init_object (json_node_alloc (), result);
			ppnctl_print_json (node);
		}
		return TRUE;
	}
	table = ppnctl_table_new (_("ID"), _("NAME"), _("IMAGE"), _("STATE"), _("VCPUS"), _("MEMORY"),
				  _("FORWARDS"), _("CREATED"), NULL);
	for (guint i = 0; i < json_array_get_length (all); i++) {
		JsonNode *el = json_array_get_element (all, i);
		JsonObject *vm;
		g_autofree gchar *vcpus = NULL;
		g_autofree gchar *memory = NULL;
		g_autofree gchar *forwards = NULL;
		const gchar *id, *name, *image, *state, *created;

		if (!JSON_NODE_HOLDS_OBJECT (el))
			continue;
		vm = json_node_get_object (el);
		vcpus = ppnctl_json_int (vm, "vcpus");
		memory = ppnctl_vm_format_memory (vm);
		forwards = ppnctl_vm_format_forwards (vm, ",");
		id = ppnctl_json_string (vm, "id");
		name = ppnctl_json_string (vm, "name");
		image = ppnctl_json_string (vm, "image");
		state = ppnctl_json_string (vm, "state");
		created = ppnctl_json_string (vm, "created_at");
		ppnctl_table_add_row (table, id != NULL ? id : "-", name != NULL ? name : "-",
				      image != NULL ? image : "-", state != NULL ? state : "-", vcpus, memory,
				      forwards, created != NULL ? created : "-", NULL);
	}
	ppnctl_table_print (table);
	if (last != NULL && limit != -1) {
		const gchar *next = NULL;
		if (ppn_json_get_string (json_node_get_object (last), "next_page_token", FALSE, &next, NULL) &&
		    next != NULL && next[0] != '\0')
			g_printerr (_("ppnctl: more VMs exist; without --limit all are listed\n"));
	}
	return TRUE;
}

static gboolean
ppnctl_vm_parse_id (int argc, char **argv, const gchar *command, GError **error)
{
	if (argc != 2) {
		ppnctl_usage_error (error, _("'ppnctl vm %s' takes one VM ID"), command);
		return FALSE;
	}
	/* the id goes into the URL path: nothing but 16 hex digits may */
	if (!ppn_vm_id_validate (argv[1], error)) {
		ppnctl_error_to_usage (error);
		return FALSE;
	}
	return TRUE;
}

static gboolean
ppnctl_vm_show (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autoptr(GOptionContext) context = ppnctl_option_context_new (_("ID"), _("Show one VM."), NULL);
	g_autoptr(PpnctlClient) client = NULL;
	g_autoptr(JsonNode) answer = NULL;
	g_autofree gchar *path = NULL;
	JsonObject *vm;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error) ||
	    !ppnctl_vm_parse_id (argc, argv, "show", error))
		return FALSE;
	path = g_strconcat ("/v1/vms/", argv[1], NULL);
	client = ppnctl_client_new (error);
	if (client == NULL || !ppnctl_client_call (client, "GET", path, NULL, &answer, cancellable, error) ||
	    !ppnctl_vm_object (answer, &vm, error))
		return FALSE;
	if (ppnctl_output_json ())
		ppnctl_print_json (answer);
	else
		ppnctl_vm_print (vm);
	return TRUE;
}

static gboolean
ppnctl_vm_delete (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autoptr(GOptionContext) context =
		ppnctl_option_context_new (_("ID"), _("Delete a VM: its domain is destroyed."), NULL);
	g_autoptr(PpnctlClient) client = NULL;
	g_autoptr(JsonNode) answer = NULL;
	g_autofree gchar *path = NULL;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error) ||
	    !ppnctl_vm_parse_id (argc, argv, "delete", error))
		return FALSE;
	path = g_strconcat ("/v1/vms/", argv[1], NULL);
	client = ppnctl_client_new (error);
	if (client == NULL || !ppnctl_client_call (client, "DELETE", path, NULL, &answer, cancellable, error))
		return FALSE;
	/* 204 has no body: --json prints nothing, the exit status says it */
	if (!ppnctl_output_json ())
		g_print (_("Deleted VM %s\n"), argv[1]);
	return TRUE;
}

static const PpnctlCommand vm_commands[] = {
	{"create", ppnctl_vm_create, N_("Create a VM and wait until it runs")},
	{"list", ppnctl_vm_list, N_("List the tenant's VMs")},
	{"show", ppnctl_vm_show, N_("Show one VM")},
	{"delete", ppnctl_vm_delete, N_("Delete a VM")},
	{NULL, NULL, NULL},
};

gboolean
ppnctl_builtin_vm (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	return ppnctl_dispatch ("vm", vm_commands, argc, argv, cancellable, error);
}
