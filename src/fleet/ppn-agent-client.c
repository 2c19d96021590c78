#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include "ppn-agent-client.h"
#include "ppn-error.h"
#include "ppn-http.h"
#include "ppn-i18n.h"
#include "ppn-json.h"

struct _PpnAgentClient {
	GObject parent_instance;
	SoupSession *session;
	GTlsCertificate *cert;
};

G_DEFINE_TYPE (PpnAgentClient, ppn_agent_client, G_TYPE_OBJECT)

typedef struct {
	gchar *node_id;
	SoupMessage *msg;
	GCancellable *cancellable;
	GError *peer_error; /* the agent is not the node we meant */
} PpnAgentCall;

void
ppn_agent_domain_free (PpnAgentDomain *domain)
{
	if (domain == NULL)
		return;
	g_clear_pointer (&domain->forwards, g_ptr_array_unref);
	g_free (domain->egress);
	g_free (domain);
}

static void
ppn_agent_call_free (PpnAgentCall *call)
{
	g_free (call->node_id);
	g_clear_object (&call->msg);
	g_clear_object (&call->cancellable);
	g_clear_error (&call->peer_error);
	g_free (call);
}

static gboolean
ppn_agent_client_check_cert (PpnAgentCall *call, GTlsCertificate *peer, GError **error)
{
	PpnTlsRole role = PPN_TLS_ROLE_UNKNOWN;
	g_autofree gchar *name = NULL;

	if (peer == NULL || !ppn_tls_certificate_identity (peer, &role, &name, error))
		return FALSE;
	if (role != PPN_TLS_ROLE_AGENT || g_strcmp0 (name, call->node_id) != 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
			     _("The agent at the address of node %s presented the certificate of %s %s"),
			     call->node_id, ppn_tls_role_to_string (role), name);
		return FALSE;
	}
	return TRUE;
}

/* checked once the handshake is done, before the request is written, so
 * a node cannot have the fleet's commands for another node delivered to
 * itself by advertising that node's address */
static void
ppn_agent_client_network_event_cb (SoupMessage *msg, GSocketClientEvent event, GIOStream *connection,
				   gpointer user_data)
{
	PpnAgentCall *call = user_data;

	if (event != G_SOCKET_CLIENT_TLS_HANDSHAKED || !G_IS_TLS_CONNECTION (connection) || call->peer_error != NULL)
		return;
	if (!ppn_agent_client_check_cert (call, g_tls_connection_get_peer_certificate (G_TLS_CONNECTION (connection)),
					  &call->peer_error)) {
		g_warning ("not sending to node %s: %s", call->node_id, call->peer_error->message);
		g_cancellable_cancel (call->cancellable);
	}
}

/* and again on the answer, for a kept-alive connection that had no
 * handshake for this request */
static gboolean
ppn_agent_client_check_peer (PpnAgentCall *call, GError **error)
{
	if (call->peer_error != NULL) {
		g_propagate_error (error, g_error_copy (call->peer_error));
		return FALSE;
	}
	return ppn_agent_client_check_cert (call, soup_message_get_tls_peer_certificate (call->msg), error);
}

static void
ppn_agent_client_start (PpnAgentClient *self,
			const gchar *node_id,
			const gchar *method,
			const gchar *url,
			JsonNode *body,
			GCancellable *cancellable,
			GAsyncReadyCallback done,
			GAsyncReadyCallback callback,
			gpointer user_data)
{
	GTask *task = g_task_new (self, cancellable, callback, user_data);
	g_autoptr(GError) error = NULL;
	PpnAgentCall *call = g_new0 (PpnAgentCall, 1);

	call->node_id = g_strdup (node_id);
	call->cancellable = g_cancellable_new ();
	g_task_set_task_data (task, call, (GDestroyNotify)ppn_agent_call_free);
	call->msg = ppn_http_request_new (method, url, body, self->cert, &error);
	if (call->msg == NULL) {
		g_task_return_error (task, g_steal_pointer (&error));
		g_object_unref (task);
		return;
	}
	if (cancellable != NULL)
		g_cancellable_connect (cancellable, G_CALLBACK (g_cancellable_cancel), g_object_ref (call->cancellable),
				       g_object_unref);
	g_signal_connect (call->msg, "network-event", G_CALLBACK (ppn_agent_client_network_event_cb), call);
	ppn_http_send_json_async (self->session, call->msg, call->cancellable, done, task);
}

static void
ppn_agent_client_create_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	PpnAgentCall *call = g_task_get_task_data (task);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) reply = ppn_http_send_json_finish (SOUP_SESSION (source), res, &error);
	JsonArray *fwd = NULL;
	const gchar *egress = NULL;
	g_autoptr(PpnAgentDomain) domain = g_new0 (PpnAgentDomain, 1);

	if (error == NULL || call->peer_error != NULL) {
		g_clear_error (&error);
		ppn_agent_client_check_peer (call, &error);
	}
	if (error == NULL && reply == NULL)
		g_set_error_literal (&error, PPN_ERROR, PPN_ERROR_UNAVAILABLE, _("The agent sent an empty answer"));
	if (error == NULL &&
	    (!ppn_json_get_array (json_node_get_object (reply), "port_forwards", TRUE, &fwd, &error) ||
	     !ppn_json_get_string (json_node_get_object (reply), "egress", TRUE, &egress, &error) ||
	     !ppn_vm_egress_validate (egress, &error))) {
		g_prefix_error (&error, _("The agent's answer is malformed: "));
		error->code = PPN_ERROR_UNAVAILABLE;
	}
	if (error != NULL) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	domain->forwards = ppn_forwards_from_json (fwd, 1024, TRUE, &error);
	if (domain->forwards == NULL) {
		g_prefix_error (&error, _("The agent's answer is malformed: "));
		error->code = PPN_ERROR_UNAVAILABLE;
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	domain->egress = g_strdup (egress);
	g_task_return_pointer (task, g_steal_pointer (&domain), (GDestroyNotify)ppn_agent_domain_free);
}

void
ppn_agent_client_create_async (PpnAgentClient *self,
			       const gchar *node_id,
			       const gchar *agent_url,
			       const PpnVm *vm,
			       GCancellable *cancellable,
			       GAsyncReadyCallback callback,
			       gpointer user_data)
{
	g_autoptr(JsonObject) obj = json_object_new ();
	g_autoptr(JsonNode) body = json_node_new (JSON_NODE_OBJECT);
	g_autofree gchar *url = g_strconcat (agent_url, "/agent/v1/domains", NULL);

	g_return_if_fail (PPN_IS_AGENT_CLIENT (self));
	json_object_set_string_member (obj, "vm_id", vm->id);
	json_object_set_string_member (obj, "tenant", vm->tenant);
	json_object_set_string_member (obj, "name", vm->name);
	json_object_set_string_member (obj, "image", vm->image);
	json_object_set_int_member (obj, "vcpus", vm->vcpus);
	json_object_set_int_member (obj, "memory_mib", vm->memory_mib);
	json_object_set_member (obj, "port_forwards", ppn_forwards_to_json (vm->forwards, FALSE));
	json_object_set_string_member (obj, "egress", vm->egress);
	json_node_set_object (body, obj);
	ppn_agent_client_start (self, node_id, "POST", url, body, cancellable, ppn_agent_client_create_cb,
				callback, user_data);
}

PpnAgentDomain *
ppn_agent_client_create_finish (PpnAgentClient *self, GAsyncResult *res, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (res, self), NULL);
	return g_task_propagate_pointer (G_TASK (res), error);
}

static void
ppn_agent_client_destroy_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	PpnAgentCall *call = g_task_get_task_data (task);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) reply = ppn_http_send_json_finish (SOUP_SESSION (source), res, &error);

	/* a 404 still proves which agent answered */
	if (error == NULL || call->peer_error != NULL || g_error_matches (error, PPN_ERROR, PPN_ERROR_NOT_FOUND)) {
		g_autoptr(GError) peer_error = NULL;
		if (!ppn_agent_client_check_peer (call, &peer_error)) {
			g_task_return_error (task, g_steal_pointer (&peer_error));
			return;
		}
	}
	if (error != NULL) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	g_task_return_boolean (task, TRUE);
}

void
ppn_agent_client_destroy_async (PpnAgentClient *self,
				const gchar *node_id,
				const gchar *agent_url,
				const gchar *vm_id,
				GCancellable *cancellable,
				GAsyncReadyCallback callback,
				gpointer user_data)
{
	g_autofree gchar *url = g_strconcat (agent_url, "/agent/v1/domains/", vm_id, NULL);

	g_return_if_fail (PPN_IS_AGENT_CLIENT (self));
	ppn_agent_client_start (self, node_id, "DELETE", url, NULL, cancellable, ppn_agent_client_destroy_cb,
				callback, user_data);
}

gboolean
ppn_agent_client_destroy_finish (PpnAgentClient *self, GAsyncResult *res, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (res, self), FALSE);
	return g_task_propagate_boolean (G_TASK (res), error);
}

static void
ppn_agent_client_finalize (GObject *object)
{
	PpnAgentClient *self = PPN_AGENT_CLIENT (object);

	g_clear_object (&self->session);
	g_clear_object (&self->cert);
	G_OBJECT_CLASS (ppn_agent_client_parent_class)->finalize (object);
}

static void
ppn_agent_client_class_init (PpnAgentClientClass *klass)
{
	G_OBJECT_CLASS (klass)->finalize = ppn_agent_client_finalize;
}

static void
ppn_agent_client_init (PpnAgentClient *self)
{
}

PpnAgentClient *
ppn_agent_client_new (GTlsDatabase *ca, GTlsCertificate *cert, guint timeout_seconds)
{
	PpnAgentClient *self = g_object_new (PPN_TYPE_AGENT_CLIENT, NULL);

	self->session = ppn_http_session_new (ca, timeout_seconds);
	self->cert = g_object_ref (cert);
	return self;
}
