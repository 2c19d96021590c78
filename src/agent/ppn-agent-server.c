#include "config.h"

#define G_LOG_DOMAIN "ppn-agent"

#include <string.h>

#include "ppn-agent-server.h"
#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-http.h"
#include "ppn-i18n.h"
#include "ppn-json.h"

#define PPN_AGENT_DOMAINS_PATH "/agent/v1/domains"

struct _PpnAgentServer {
	GObject parent_instance;

	SoupServer *server;
	PpnDomainManager *manager;
	PpnImageCatalog *catalog;
	guint max_forwards;
};

G_DEFINE_TYPE (PpnAgentServer, ppn_agent_server, G_TYPE_OBJECT)

/* one paused request waiting for the domain manager; like libsoup's
 * simple-proxy, it holds the message and notices a client that left */
typedef struct {
	PpnAgentServer *self;
	SoupServerMessage *msg;
	gulong finished_id;
	gboolean gone;
} PpnAgentRequest;

static void
ppn_agent_request_finished_cb (SoupServerMessage *msg, gpointer user_data)
{
	PpnAgentRequest *req = user_data;

	req->gone = TRUE;
}

static PpnAgentRequest *
ppn_agent_request_new (PpnAgentServer *self, SoupServerMessage *msg)
{
	PpnAgentRequest *req = g_new0 (PpnAgentRequest, 1);

	req->self = g_object_ref (self);
	req->msg = g_object_ref (msg);
	req->finished_id = g_signal_connect (msg, "finished", G_CALLBACK (ppn_agent_request_finished_cb), req);
	soup_server_message_pause (msg);
	return req;
}

/* answers (unless the client left) and frees @req; every path ends here */
static void
ppn_agent_request_done (PpnAgentRequest *req)
{
	g_clear_signal_handler (&req->finished_id, req->msg);
	if (!req->gone)
		soup_server_message_unpause (req->msg);
	g_object_unref (req->msg);
	g_object_unref (req->self);
	g_free (req);
}

static void
ppn_agent_server_reply_error (SoupServerMessage *msg, const GError *error)
{
	if (error->domain != PPN_ERROR || error->code == PPN_ERROR_INTERNAL)
		g_warning (_("%s %s: %s"), soup_server_message_get_method (msg),
			   g_uri_get_path (soup_server_message_get_uri (msg)), error->message);
	ppn_http_reply_error (msg, error);
}

static void
ppn_agent_server_method_not_allowed (SoupServerMessage *msg, const gchar *allow)
{
	g_autoptr(GError) error = g_error_new (PPN_ERROR, PPN_ERROR_METHOD_NOT_ALLOWED,
					       _("Method %s is not allowed here"),
					       soup_server_message_get_method (msg));

	soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow", allow);
	ppn_http_reply_error (msg, error);
}

/* the fleet controller is the agent's only client */
static gboolean
ppn_agent_server_authorize (SoupServerMessage *msg, GError **error)
{
	g_autoptr(GError) local = NULL;
	g_autofree gchar *name = NULL;
	PpnTlsRole role = PPN_TLS_ROLE_UNKNOWN;

	if (!ppn_http_peer_identity (msg, &role, &name, &local)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_FORBIDDEN, _("Access denied: %s"), local->message);
		return FALSE;
	}
	if (role != PPN_TLS_ROLE_FLEET) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_FORBIDDEN,
			     _("Access denied: a fleet certificate is required, this one is for %s '%s'"),
			     ppn_tls_role_to_string (role), name);
		return FALSE;
	}
	return TRUE;
}

/* ---- POST /agent/v1/domains ------------------------------------------- */

static PpnDomainRequest *
ppn_agent_server_parse_create (PpnAgentServer *self, SoupServerMessage *msg, GError **error)
{
	static const gchar *const allowed[] = {"vm_id", "tenant", "name", "image", "vcpus", "memory_mib",
					       "port_forwards", "egress", NULL};
	g_autoptr(JsonNode) root = NULL;
	g_autoptr(PpnDomainRequest) req = ppn_domain_request_new ();
	JsonObject *obj;
	JsonArray *forwards = NULL;
	const gchar *vm_id = NULL, *tenant = NULL, *name = NULL, *image = NULL, *egress = NULL;
	gint64 vcpus = 1, memory_mib = 256;
	guint max_vcpus = 0, max_memory_mib = 0;

	/* one VM is never larger than the whole node; the fleet counts the rest */
	ppn_domain_manager_get_capacity (self->manager, &max_vcpus, &max_memory_mib);
	root = ppn_http_read_json (msg, PPN_HTTP_MAX_BODY_DEFAULT, error);
	if (root == NULL)
		return NULL;
	obj = json_node_get_object (root);
	if (!ppn_json_check_members (obj, NULL, allowed, error) ||
	    !ppn_json_get_string (obj, "vm_id", TRUE, &vm_id, error))
		return NULL;
	if (!ppn_vm_id_validate (vm_id, NULL)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'vm_id' must be 16 lower-case hexadecimal digits"));
		return NULL;
	}
	if (!ppn_json_get_string (obj, "tenant", TRUE, &tenant, error) ||
	    !ppn_name_validate ("tenant", tenant, error) ||
	    !ppn_json_get_string (obj, "name", TRUE, &name, error) ||
	    !ppn_name_validate ("name", name, error) ||
	    !ppn_json_get_string (obj, "image", TRUE, &image, error) ||
	    !ppn_name_validate ("image", image, error) ||
	    !ppn_json_get_int (obj, "vcpus", FALSE, 1, MAX (max_vcpus, 1), &vcpus, error) ||
	    !ppn_json_get_int (obj, "memory_mib", FALSE, 64, MAX (max_memory_mib, 64), &memory_mib, error) ||
	    !ppn_json_get_array (obj, "port_forwards", FALSE, &forwards, error) ||
	    !ppn_json_get_string (obj, "egress", FALSE, &egress, error))
		return NULL;
	/* absent means nat; anything else that is not a known word (null
	 * included) is refused rather than read as the open default */
	if (egress == NULL && !json_object_has_member (obj, "egress"))
		egress = "nat";
	if (!ppn_egress_from_string (egress, &req->egress)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'egress' must be \"nat\" or \"none\""));
		return NULL;
	}
	g_ptr_array_unref (req->forwards);
	req->forwards = ppn_forwards_from_json (forwards, self->max_forwards, FALSE, error);
	if (req->forwards == NULL)
		return NULL;
	req->vm_id = g_strdup (vm_id);
	req->tenant = g_strdup (tenant);
	req->name = g_strdup (name);
	req->image = g_strdup (image);
	req->vcpus = (guint)vcpus;
	req->memory_mib = (guint)memory_mib;
	return g_steal_pointer (&req);
}

static void
ppn_agent_server_orphan_destroyed_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autofree gchar *vm_id = user_data;
	g_autoptr(GError) error = NULL;

	if (!ppn_domain_manager_destroy_finish (PPN_DOMAIN_MANAGER (source), res, &error))
		g_warning (_("Cannot destroy the domain of VM %s nobody waits for: %s"), vm_id, error->message);
}

static void
ppn_agent_server_create_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	PpnAgentRequest *req = user_data;
	PpnDomainManager *manager = PPN_DOMAIN_MANAGER (source);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnDomainInfo) info = ppn_domain_manager_create_finish (manager, res, &error);
	g_autoptr(JsonBuilder) b = NULL;
	g_autoptr(JsonNode) root = NULL;

	if (info == NULL) {
		if (!req->gone)
			ppn_agent_server_reply_error (req->msg, error);
		ppn_agent_request_done (req);
		return;
	}
	if (req->gone) {
		/* the fleet gave up on this create; a domain it does not know of
		 * must not keep running */
		g_warning (_("The caller left before %s was running; destroying it"), info->domain);
		ppn_domain_manager_destroy_async (manager, info->vm_id, NULL, ppn_agent_server_orphan_destroyed_cb,
						  g_strdup (info->vm_id));
		ppn_agent_request_done (req);
		return;
	}
	b = json_builder_new ();
	json_builder_begin_object (b);
	json_builder_set_member_name (b, "vm_id");
	json_builder_add_string_value (b, info->vm_id);
	json_builder_set_member_name (b, "domain");
	json_builder_add_string_value (b, info->domain);
	json_builder_set_member_name (b, "state");
	json_builder_add_string_value (b, info->state);
	json_builder_set_member_name (b, "accel");
	json_builder_add_string_value (b, ppn_domain_manager_get_accel (manager));
	json_builder_set_member_name (b, "egress");
	json_builder_add_string_value (b, info->egress);
	json_builder_set_member_name (b, "port_forwards");
	json_builder_add_value (b, ppn_forwards_to_json (info->forwards, TRUE));
	json_builder_end_object (b);
	root = json_builder_get_root (b);
	ppn_http_reply_json (req->msg, SOUP_STATUS_CREATED, root);
	ppn_agent_request_done (req);
}

static void
ppn_agent_server_handle_create (PpnAgentServer *self, SoupServerMessage *msg)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnDomainRequest) request = NULL;
	g_autoptr(PpnImage) image = NULL;

	request = ppn_agent_server_parse_create (self, msg, &error);
	if (request != NULL)
		image = ppn_image_catalog_lookup (self->catalog, request->image, &error);
	if (image == NULL) {
		ppn_agent_server_reply_error (msg, error);
		return;
	}
	ppn_domain_manager_create_async (self->manager, request, image, NULL, ppn_agent_server_create_cb,
					 ppn_agent_request_new (self, msg));
}

/* ---- GET /agent/v1/domains -------------------------------------------- */

static void
ppn_agent_server_list_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	PpnAgentRequest *req = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) infos = ppn_domain_manager_list_finish (PPN_DOMAIN_MANAGER (source), res, &error);
	g_autoptr(JsonBuilder) b = NULL;
	g_autoptr(JsonNode) root = NULL;

	if (req->gone) {
		ppn_agent_request_done (req);
		return;
	}
	if (infos == NULL) {
		ppn_agent_server_reply_error (req->msg, error);
		ppn_agent_request_done (req);
		return;
	}
	b = json_builder_new ();
	json_builder_begin_object (b);
	json_builder_set_member_name (b, "domains");
	json_builder_begin_array (b);
	for (guint i = 0; i < infos->len; i++)
		json_builder_add_value (b, ppn_domain_info_to_json (g_ptr_array_index (infos, i)));
	json_builder_end_array (b);
	json_builder_end_object (b);
	root = json_builder_get_root (b);
	ppn_http_reply_json (req->msg, SOUP_STATUS_OK, root);
	ppn_agent_request_done (req);
}

/* ---- DELETE /agent/v1/domains/{vm_id} --------------------------------- */

static void
ppn_agent_server_destroy_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	PpnAgentRequest *req = user_data;
	g_autoptr(GError) error = NULL;

	if (!ppn_domain_manager_destroy_finish (PPN_DOMAIN_MANAGER (source), res, &error)) {
		if (!req->gone)
			ppn_agent_server_reply_error (req->msg, error);
	} else if (!req->gone) {
		ppn_http_reply_no_content (req->msg);
	}
	ppn_agent_request_done (req);
}

static void
ppn_agent_server_handle_destroy (PpnAgentServer *self, SoupServerMessage *msg, const gchar *vm_id)
{
	if (!ppn_vm_id_validate (vm_id, NULL)) {
		g_autoptr(GError) error = g_error_new_literal (PPN_ERROR, PPN_ERROR_NOT_FOUND,
							       _("No such domain: a VM id is 16 lower-case hexadecimal digits"));
		ppn_http_reply_error (msg, error);
		return;
	}
	ppn_domain_manager_destroy_async (self->manager, vm_id, NULL, ppn_agent_server_destroy_cb,
					  ppn_agent_request_new (self, msg));
}

/* ---- dispatch ----------------------------------------------------------- */

static void
ppn_agent_server_handler (SoupServer *server,
			  SoupServerMessage *msg,
			  const char *path,
			  GHashTable *query,
			  gpointer user_data)
{
	PpnAgentServer *self = user_data;
	const gchar *method = soup_server_message_get_method (msg);
	g_autoptr(GError) error = NULL;

	if (!ppn_agent_server_authorize (msg, &error)) {
		g_message (_("%s %s refused: %s"), method, path, error->message);
		ppn_http_reply_error (msg, error);
		return;
	}
	if (g_strcmp0 (path, PPN_AGENT_DOMAINS_PATH) == 0) {
		if (g_strcmp0 (method, SOUP_METHOD_POST) == 0) {
			ppn_agent_server_handle_create (self, msg);
		} else if (g_strcmp0 (method, SOUP_METHOD_GET) == 0) {
			ppn_domain_manager_list_async (self->manager, NULL, ppn_agent_server_list_cb,
						       ppn_agent_request_new (self, msg));
		} else {
			ppn_agent_server_method_not_allowed (msg, "GET, POST");
		}
		return;
	}
	if (g_str_has_prefix (path, PPN_AGENT_DOMAINS_PATH "/") &&
	    strchr (path + strlen (PPN_AGENT_DOMAINS_PATH "/"), '/') == NULL) {
		if (g_strcmp0 (method, SOUP_METHOD_DELETE) == 0)
			ppn_agent_server_handle_destroy (self, msg, path + strlen (PPN_AGENT_DOMAINS_PATH "/"));
		else
			ppn_agent_server_method_not_allowed (msg, "DELETE");
		return;
	}
	error = g_error_new (PPN_ERROR, PPN_ERROR_NOT_FOUND, _("No such resource: %s"), path);
	ppn_http_reply_error (msg, error);
}

gboolean
ppn_agent_server_listen (PpnAgentServer *self, const gchar *address, guint16 *bound_port, GError **error)
{
	g_return_val_if_fail (PPN_IS_AGENT_SERVER (self), FALSE);
	return ppn_http_listen (self->server, address, bound_port, error);
}

void
ppn_agent_server_disconnect (PpnAgentServer *self)
{
	g_return_if_fail (PPN_IS_AGENT_SERVER (self));
	soup_server_disconnect (self->server);
}

PpnAgentServer *
ppn_agent_server_new (const PpnAgentConfig *config,
		      PpnDomainManager *manager,
		      PpnImageCatalog *catalog,
		      GTlsCertificate *cert,
		      GTlsDatabase *client_ca,
		      GError **error)
{
	g_autoptr(PpnAgentServer) self = NULL;

	g_return_val_if_fail (config != NULL, NULL);
	g_return_val_if_fail (PPN_IS_DOMAIN_MANAGER (manager), NULL);
	g_return_val_if_fail (catalog != NULL, NULL);
	g_return_val_if_fail (G_IS_TLS_CERTIFICATE (cert), NULL);
	g_return_val_if_fail (G_IS_TLS_DATABASE (client_ca), NULL);

	self = g_object_new (PPN_TYPE_AGENT_SERVER, NULL);
	self->server = ppn_http_server_new (cert, client_ca, error);
	if (self->server == NULL)
		return NULL;
	self->manager = g_object_ref (manager);
	self->catalog = catalog;
	self->max_forwards = config->max_forwards;
	soup_server_add_handler (self->server, "/", ppn_agent_server_handler, self, NULL);
	return g_steal_pointer (&self);
}

static void
ppn_agent_server_dispose (GObject *object)
{
	PpnAgentServer *self = PPN_AGENT_SERVER (object);

	if (self->server != NULL)
		soup_server_disconnect (self->server);
	g_clear_object (&self->server);
	g_clear_object (&self->manager);
	G_OBJECT_CLASS (ppn_agent_server_parent_class)->dispose (object);
}

static void
ppn_agent_server_class_init (PpnAgentServerClass *klass)
{
	G_OBJECT_CLASS (klass)->dispose = ppn_agent_server_dispose;
}

static void
ppn_agent_server_init (PpnAgentServer *self)
{
}
