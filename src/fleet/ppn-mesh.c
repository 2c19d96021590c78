#include "config.h"

#define G_LOG_DOMAIN "ppn-mesh"

#include <string.h>

#include "ppn-error.h"
#include "ppn-http.h"
#include "ppn-i18n.h"
#include "ppn-mesh.h"
#include "ppn-metrics.h"

/* a heartbeat lists every domain of a node: allow for thousands */
#define PPN_MESH_MAX_BODY (8 * 1024 * 1024)

struct _PpnMesh {
	GObject parent_instance;
	PpnController *controller;
	PpnMetrics *metrics; /* not ours; NULL: none */
	SoupServer *server;
	guint16 port;
};

G_DEFINE_TYPE (PpnMesh, ppn_mesh, G_TYPE_OBJECT)

static gboolean
ppn_mesh_check (SoupServerMessage *msg,
		PpnTlsRole role,
		const gchar *name,
		PpnTlsRole wanted,
		const char *method,
		const gchar *refusal,
		GError **error)
{
	if (role != wanted) {
		g_warning ("%s %s refused: certificate of %s %s is not an %s's", soup_server_message_get_method (msg),
			   soup_server_message_get_uri (msg) != NULL ? g_uri_get_path (soup_server_message_get_uri (msg))
								     : "?",
			   ppn_tls_role_to_string (role), name, ppn_tls_role_to_string (wanted));
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_FORBIDDEN, refusal);
		return FALSE;
	}
	if (soup_server_message_get_method (msg) != method) {
		soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow", method);
		g_set_error (error, PPN_ERROR, PPN_ERROR_METHOD_NOT_ALLOWED, _("Use %s"), method);
		return FALSE;
	}
	return TRUE;
}

/* POST /mesh/v1/heartbeat, agents only: the node is the certificate's */
static void
ppn_mesh_heartbeat (PpnMesh *self, SoupServerMessage *msg, const gchar *name)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) body = NULL;
	g_autoptr(JsonNode) reply = json_node_new (JSON_NODE_OBJECT);
	gint64 started = g_get_monotonic_time ();

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

/* GET /mesh/v1/nodes, operators only */
static void
ppn_mesh_nodes (PpnMesh *self, SoupServerMessage *msg, const gchar *name)
{
	g_autoptr(JsonNode) reply = ppn_controller_get_nodes (self->controller);

	g_debug ("operator %s lists the nodes", name);
	ppn_http_reply_json (msg, SOUP_STATUS_OK, reply);
}

/* GET /metrics, operators only (a Prometheus scraper with an operator
 * certificate): Prometheus text format 0.0.4 */
static void
ppn_mesh_metrics (PpnMesh *self, SoupServerMessage *msg)
{
	g_autofree gchar *text = self->metrics != NULL ? ppn_metrics_render (self->metrics) : g_strdup ("");

	soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
	soup_server_message_set_response (msg, "text/plain; version=0.0.4; charset=utf-8", SOUP_MEMORY_COPY, text,
					  strlen (text));
}

static const gchar *
ppn_mesh_route_name (const gchar *path)
{
	static const gchar *const routes[] = {"/mesh/v1/heartbeat", "/mesh/v1/nodes", "/metrics", NULL};
	const gchar *name = ppn_metrics_route_name (path, routes);

	return name != NULL ? name : "other";
}

static void
ppn_mesh_handler_cb (SoupServer *server,
		     SoupServerMessage *msg,
		     const char *path,
		     GHashTable *query,
		     gpointer user_data)
{
	PpnMesh *self = PPN_MESH (user_data);
	g_autoptr(GError) error = NULL;
	g_autofree gchar *name = NULL;
	PpnTlsRole role = PPN_TLS_ROLE_UNKNOWN;
	gint64 started = g_get_monotonic_time ();

	if (!ppn_http_peer_identity (msg, &role, &name, &error)) {
		g_warning ("mesh request refused: %s", error->message);
	} else if (g_strcmp0 (path, "/mesh/v1/heartbeat") == 0) {
		if (ppn_mesh_check (msg, role, name, PPN_TLS_ROLE_AGENT, SOUP_METHOD_POST,
				    _("Only agents send heartbeats"), &error))
			ppn_mesh_heartbeat (self, msg, name);
	} else if (g_strcmp0 (path, "/mesh/v1/nodes") == 0) {
		if (ppn_mesh_check (msg, role, name, PPN_TLS_ROLE_OPERATOR, SOUP_METHOD_GET,
				    _("Only operators may list the nodes"), &error))
			ppn_mesh_nodes (self, msg, name);
	} else if (g_strcmp0 (path, "/metrics") == 0) {
		if (ppn_mesh_check (msg, role, name, PPN_TLS_ROLE_OPERATOR, SOUP_METHOD_GET,
				    _("Only operators may read the metrics"), &error))
			ppn_mesh_metrics (self, msg);
	} else {
		g_set_error_literal (&error, PPN_ERROR, PPN_ERROR_NOT_FOUND, _("No such endpoint"));
	}
	if (error != NULL)
		ppn_http_reply_error (msg, error);
	if (self->metrics != NULL)
		ppn_metrics_observe_request (self->metrics, "mesh", soup_server_message_get_method (msg),
					     ppn_mesh_route_name (path), soup_server_message_get_status (msg),
					     (g_get_monotonic_time () - started) / 1e6);
}

void
ppn_mesh_set_metrics (PpnMesh *self, PpnMetrics *metrics)
{
	g_return_if_fail (PPN_IS_MESH (self));
	self->metrics = metrics;
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
	soup_server_add_handler (self->server, NULL, ppn_mesh_handler_cb, self, NULL);
	if (!ppn_http_listen (self->server, listen, &self->port, error))
		return NULL;
	return g_steal_pointer (&self);
}
