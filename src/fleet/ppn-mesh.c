#include "config.h"

#define G_LOG_DOMAIN "ppn-mesh"

#include "ppn-error.h"
#include "ppn-http.h"
#include "ppn-i18n.h"
#include "ppn-mesh.h"

/* a heartbeat lists every domain of a node: allow for thousands */
#define PPN_MESH_MAX_BODY (8 * 1024 * 1024)

struct _PpnMesh {
	GObject parent_instance;
	PpnController *controller;
	SoupServer *server;
	guint16 port;
};

G_DEFINE_TYPE (PpnMesh, ppn_mesh, G_TYPE_OBJECT)

static void
ppn_mesh_heartbeat_cb (SoupServer *server,
		       SoupServerMessage *msg,
		       const char *path,
		       GHashTable *query,
		       gpointer user_data)
{
	PpnMesh *self = PPN_MESH (user_data);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) body = NULL;
	g_autoptr(JsonNode) reply = json_node_new (JSON_NODE_OBJECT);
	g_autofree gchar *name = NULL;
	PpnTlsRole role = PPN_TLS_ROLE_UNKNOWN;
	gint64 started = g_get_monotonic_time ();

	if (!ppn_http_peer_identity (msg, &role, &name, &error)) {
		g_warning ("heartbeat refused: %s", error->message);
		ppn_http_reply_error (msg, error);
		return;
	}
	if (role != PPN_TLS_ROLE_AGENT) {
		g_warning ("heartbeat refused: certificate of %s %s is not an agent's",
			   ppn_tls_role_to_string (role), name);
		g_set_error_literal (&error, PPN_ERROR, PPN_ERROR_FORBIDDEN, _("Only agents send heartbeats"));
		ppn_http_reply_error (msg, error);
		return;
	}
	if (g_strcmp0 (path, "/mesh/v1/heartbeat") != 0) {
		g_set_error_literal (&error, PPN_ERROR, PPN_ERROR_NOT_FOUND, _("No such endpoint"));
		ppn_http_reply_error (msg, error);
		return;
	}
	if (soup_server_message_get_method (msg) != SOUP_METHOD_POST) {
		soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow", "POST");
		g_set_error_literal (&error, PPN_ERROR, PPN_ERROR_METHOD_NOT_ALLOWED, _("Use POST"));
		ppn_http_reply_error (msg, error);
		return;
	}
	body = ppn_http_read_json (msg, PPN_MESH_MAX_BODY, &error);
	if (body == NULL || !ppn_controller_heartbeat (self->controller, name, json_node_get_object (body), &error)) {
		g_warning ("heartbeat from node %s refused: %s", name, error->message);
		ppn_http_reply_error (msg, error);
		return;
	}
	json_node_take_object (reply, json_object_new ());
	ppn_http_reply_json (msg, SOUP_STATUS_OK, reply);
	/* the main loop's share of a heartbeat (parse, check, reconcile,
	 * answer), without TLS and HTTP; bench-scale reads it */
	g_debug ("heartbeat from node %s handled in %.3f ms", name, (g_get_monotonic_time () - started) / 1000.0);
}

/* see ppn_http_server_set_keep_alive(): for the connections accepted
 * from now on */
void
ppn_mesh_set_keep_alive (PpnMesh *self, gboolean keep_alive)
{
	g_return_if_fail (PPN_IS_MESH (self));
	ppn_http_server_set_keep_alive (self->server, keep_alive);
}

guint16
ppn_mesh_get_port (PpnMesh *self)
{
	g_return_val_if_fail (PPN_IS_MESH (self), 0);
	return self->port;
}

static void
ppn_mesh_finalize (GObject *object)
{
	PpnMesh *self = PPN_MESH (object);

	if (self->server != NULL)
		soup_server_disconnect (self->server);
	g_clear_object (&self->server);
	g_clear_object (&self->controller);
	G_OBJECT_CLASS (ppn_mesh_parent_class)->finalize (object);
}

static void
ppn_mesh_class_init (PpnMeshClass *klass)
{
	G_OBJECT_CLASS (klass)->finalize = ppn_mesh_finalize;
}

static void
ppn_mesh_init (PpnMesh *self)
{
}

PpnMesh *
ppn_mesh_new (PpnController *controller, GTlsCertificate *cert, GTlsDatabase *ca, const gchar *listen, GError **error)
{
	g_autoptr(PpnMesh) self = g_object_new (PPN_TYPE_MESH, NULL);

	g_return_val_if_fail (PPN_IS_CONTROLLER (controller), NULL);
	g_return_val_if_fail (G_IS_TLS_DATABASE (ca), NULL);
	self->controller = g_object_ref (controller);
	self->server = ppn_http_server_new (cert, ca, error);
	if (self->server == NULL)
		return NULL;
	ppn_http_server_set_max_body (self->server, PPN_MESH_MAX_BODY);
	soup_server_add_handler (self->server, NULL, ppn_mesh_heartbeat_cb, self, NULL);
	if (!ppn_http_listen (self->server, listen, &self->port, error))
		return NULL;
	return g_steal_pointer (&self);
}
