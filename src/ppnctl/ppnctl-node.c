#include "config.h"

#define G_LOG_DOMAIN "ppnctl"

#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppnctl-builtins.h"
#include "ppnctl-client.h"

/* operators' commands: the mesh listener, with an operator certificate */
#define PPNCTL_DEFAULT_MESH_URL "https://127.0.0.1:9443"

static gchar *
ppnctl_node_format_age (JsonObject *node)
{
	gint64 ms = 0;

	if (!ppn_json_get_int (node, "heartbeat_age_ms", TRUE, 0, G_MAXINT64, &ms, NULL))
		return g_strdup (_("never"));
	return g_strdup_printf (_("%.1fs ago"), ms / 1000.0);
}

/* "USED/TOTAL", from two integer members */
static gchar *
ppnctl_node_format_use (JsonObject *node, const gchar *used_member, const gchar *total_member)
{
	g_autofree gchar *used = ppnctl_json_int (node, used_member);
	g_autofree gchar *total = ppnctl_json_int (node, total_member);

	return g_strdup_printf ("%s/%s", used, total);
}

static gboolean
ppnctl_node_list (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autofree gchar *mesh_url = NULL;
	g_autofree gchar *cert = NULL;
	g_autofree gchar *key = NULL;
	const GOptionEntry entries[] = {
		{"mesh-url", 0, 0, G_OPTION_ARG_STRING, &mesh_url,
		 N_("The fleet's mesh listener (default $PPN_MESH_URL, else " PPNCTL_DEFAULT_MESH_URL ")"),
		 N_("URL")},
		{"cert", 0, 0, G_OPTION_ARG_FILENAME, &cert, N_("Operator certificate (default $PPN_CERT)"),
		 N_("FILE")},
		{"key", 0, 0, G_OPTION_ARG_FILENAME, &key, N_("Its key (default $PPN_KEY)"), N_("FILE")},
		{NULL}};
	g_autoptr(GOptionContext) context = ppnctl_option_context_new (
		NULL, _("List the fleet's nodes and their load (operator certificate)."), entries);
	g_autoptr(PpnctlClient) client = NULL;
	g_autoptr(JsonNode) answer = NULL;
	g_autoptr(PpnctlTable) table = NULL;
	JsonArray *nodes = NULL;
	const gchar *url;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error))
		return FALSE;
	if (argc != 1) {
		ppnctl_usage_error (error, _("'ppnctl node list' takes no arguments"));
		return FALSE;
	}
	url = mesh_url != NULL ? mesh_url : g_getenv ("PPN_MESH_URL");
	client = ppnctl_client_new_operator (url != NULL && url[0] != '\0' ? url : PPNCTL_DEFAULT_MESH_URL,
					     cert != NULL ? cert : g_getenv ("PPN_CERT"),
					     key != NULL ? key : g_getenv ("PPN_KEY"), error);
	if (client == NULL || !ppnctl_client_call (client, "GET", "/mesh/v1/nodes", NULL, &answer, cancellable, error))
		return FALSE;
	if (answer == NULL || !JSON_NODE_HOLDS_OBJECT (answer) ||
	    !ppn_json_get_array (json_node_get_object (answer), "nodes", TRUE, &nodes, NULL)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INTERNAL,
				     _("The server's answer holds no list of nodes"));
		return FALSE;
	}
	if (ppnctl_output_json ()) {
		ppnctl_print_json (answer);
		return TRUE;
	}
	table = ppnctl_table_new (_("NODE"), _("STATE"), _("HEARTBEAT"), _("ACCEL"), _("VCPUS"), _("MEMORY-MIB"),
				  _("VMS"), _("FREE-PORTS"), NULL);
	for (guint i = 0; i < json_array_get_length (nodes); i++) {
		JsonNode *el = json_array_get_element (nodes, i);
		JsonObject *node;
		g_autofree gchar *age = NULL;
		g_autofree gchar *vcpus = NULL;
		g_autofree gchar *memory = NULL;
		g_autofree gchar *vms = NULL;
		g_autofree gchar *ports = NULL;
		const gchar *id, *state, *accel;

		if (!JSON_NODE_HOLDS_OBJECT (el))
			continue;
		node = json_node_get_object (el);
		age = ppnctl_node_format_age (node);
		vcpus = ppnctl_node_format_use (node, "used_vcpus", "vcpus");
		memory = ppnctl_node_format_use (node, "used_memory_mib", "memory_mib");
		vms = ppnctl_json_int (node, "vms");
		ports = ppnctl_json_int (node, "free_ports");
		id = ppnctl_json_string (node, "id");
		state = ppnctl_json_string (node, "state");
		accel = ppnctl_json_string (node, "accel");
		/* a NULL cell would end the row early */
		ppnctl_table_add_row (table, id != NULL ? id : "-", state != NULL ? state : "-", age,
				      accel != NULL ? accel : "-", vcpus, memory, vms, ports, NULL);
	}
	ppnctl_table_print (table);
	return TRUE;
}

static const PpnctlCommand node_commands[] = {
	{"list", ppnctl_node_list, N_("List the nodes: state, last heartbeat, capacity and load")},
	{NULL, NULL, NULL},
};

gboolean
ppnctl_builtin_node (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	return ppnctl_dispatch ("node", node_commands, argc, argv, cancellable, error);
}
