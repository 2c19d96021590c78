#include "config.h"

#define G_LOG_DOMAIN "ppnctl"

#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppnctl-builtins.h"
#include "ppnctl-client.h"

static gboolean
ppnctl_info_get (const gchar *path, JsonNode **out, GCancellable *cancellable, GError **error)
{
	g_autoptr(PpnctlClient) client = ppnctl_client_new (error);
	g_autoptr(JsonNode) answer = NULL;

	if (client == NULL || !ppnctl_client_call (client, "GET", path, NULL, &answer, cancellable, error))
		return FALSE;
	if (answer == NULL || !JSON_NODE_HOLDS_OBJECT (answer)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("The server's answer to GET %s is empty"), path);
		return FALSE;
	}
	*out = g_steal_pointer (&answer);
	return TRUE;
}

gboolean
ppnctl_builtin_quota (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autoptr(GOptionContext) context =
		ppnctl_option_context_new (NULL, _("Show how many VMs the tenant may run and how many it has."), NULL);
	g_autoptr(JsonNode) answer = NULL;
	g_autofree gchar *max_vms = NULL;
	g_autofree gchar *used = NULL;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error))
		return FALSE;
	if (argc != 1) {
		ppnctl_usage_error (error, _("'ppnctl quota' takes no arguments"));
		return FALSE;
	}
	if (!ppnctl_info_get ("/v1/quota", &answer, cancellable, error))
		return FALSE;
	if (ppnctl_output_json ()) {
		ppnctl_print_json (answer);
		return TRUE;
	}
	max_vms = ppnctl_json_int (json_node_get_object (answer), "max_vms");
	used = ppnctl_json_int (json_node_get_object (answer), "used");
	ppnctl_print_fields (_("Max VMs"), max_vms, _("Used"), used, NULL);
	return TRUE;
}

gboolean
ppnctl_builtin_images (int argc, char **argv, GCancellable *cancellable, GError **error)
{
	g_autoptr(GOptionContext) context =
		ppnctl_option_context_new (NULL, _("List the images VMs can be created from."), NULL);
	g_autoptr(JsonNode) answer = NULL;
	g_autoptr(PpnctlTable) table = NULL;
	JsonArray *images = NULL;

	if (!ppnctl_option_context_parse (context, &argc, &argv, error))
		return FALSE;
	if (argc != 1) {
		ppnctl_usage_error (error, _("'ppnctl images' takes no arguments"));
		return FALSE;
	}
	if (!ppnctl_info_get ("/v1/images", &answer, cancellable, error))
		return FALSE;
	if (ppnctl_output_json ()) {
		ppnctl_print_json (answer);
		return TRUE;
	}
	if (!ppn_json_get_array (json_node_get_object (answer), "images", TRUE, &images, NULL)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INTERNAL,
				     _("The server's answer holds no list of images"));
		return FALSE;
	}
	table = ppnctl_table_new (_("NAME"), _("DESCRIPTION"), NULL);
	for (guint i = 0; i < json_array_get_length (images); i++) {
		JsonNode *el = json_array_get_element (images, i);
		const gchar *name, *description;

		if (!JSON_NODE_HOLDS_OBJECT (el))
			continue;
		name = ppnctl_json_string (json_node_get_object (el), "name");
		description = ppnctl_json_string (json_node_get_object (el), "description");
		ppnctl_table_add_row (table, name != NULL ? name : "-", description != NULL ? description : "",
				      NULL);
	}
	ppnctl_table_print (table);
	return TRUE;
}
