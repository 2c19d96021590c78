#include "config.h"

#define G_LOG_DOMAIN "ppn-agent"

#include "ppn-error.h"
#include "ppn-heartbeat.h"
#include "ppn-http.h"
#include "ppn-i18n.h"
#include "ppn-json.h"

#define PPN_HEARTBEAT_PATH "/mesh/v1/heartbeat"
#define PPN_HEARTBEAT_TIMEOUT 10

struct _PpnHeartbeat {
	GObject parent_instance;

	gchar *node_id;
	gchar *agent_url;
	gchar *url;
	guint interval;
	PpnDomainManager *manager;
	PpnImageCatalog *catalog;
	GTlsCertificate *client_cert;
	SoupSession *session;
	GCancellable *cancellable;
	guint timeout_id;
	gboolean in_flight;
	gboolean failing;
	gboolean ever_sent;
};

G_DEFINE_TYPE (PpnHeartbeat, ppn_heartbeat, G_TYPE_OBJECT)

static gboolean ppn_heartbeat_tick (gpointer user_data);

static void
ppn_heartbeat_schedule (PpnHeartbeat *self)
{
	g_clear_handle_id (&self->timeout_id, g_source_remove);
	self->timeout_id = g_timeout_add_seconds (self->interval, ppn_heartbeat_tick, self);
}

/* logged when it starts failing and when it recovers, not every time */
static void
ppn_heartbeat_report (PpnHeartbeat *self, const GError *error)
{
	if (error != NULL && !self->failing) {
		self->failing = TRUE;
		g_warning (_("Heartbeat to %s failed: %s (retrying every %u s)"), self->url, error->message,
			   self->interval);
	} else if (error == NULL && (self->failing || !self->ever_sent)) {
		if (self->failing)
			g_message (_("Heartbeat to %s works again"), self->url);
		else
			g_message (_("First heartbeat to %s accepted"), self->url);
		self->failing = FALSE;
	}
	if (error == NULL)
		self->ever_sent = TRUE;
}

JsonNode *
ppn_heartbeat_build (PpnHeartbeat *self, GPtrArray *domains)
{
	g_autoptr(JsonBuilder) b = json_builder_new ();
	const gchar *accel;
	guint vcpus = 0, memory_mib = 0;

	g_return_val_if_fail (PPN_IS_HEARTBEAT (self), NULL);
	accel = ppn_domain_manager_get_accel (self->manager);
	ppn_domain_manager_get_capacity (self->manager, &vcpus, &memory_mib);
	json_builder_begin_object (b);
	json_builder_set_member_name (b, "node_id");
	json_builder_add_string_value (b, self->node_id);
	json_builder_set_member_name (b, "agent_url");
	json_builder_add_string_value (b, self->agent_url);
	json_builder_set_member_name (b, "accel");
	json_builder_add_string_value (b, accel != NULL ? accel : "tcg");
	json_builder_set_member_name (b, "capacity");
	json_builder_begin_object (b);
	json_builder_set_member_name (b, "vcpus");
	json_builder_add_int_value (b, vcpus);
	json_builder_set_member_name (b, "memory_mib");
	json_builder_add_int_value (b, memory_mib);
	json_builder_set_member_name (b, "free_ports");
	json_builder_add_int_value (b, ppn_domain_manager_count_free_ports (self->manager));
	json_builder_end_object (b);
	json_builder_set_member_name (b, "images");
	json_builder_add_value (b, ppn_image_catalog_to_json (self->catalog));
	/* "unreachable": the node is alive, but its empty list proves nothing */
	json_builder_set_member_name (b, "libvirt");
	json_builder_add_string_value (b, domains != NULL ? "ok" : "unreachable");
	json_builder_set_member_name (b, "domains");
	json_builder_begin_array (b);
	for (guint i = 0; domains != NULL && i < domains->len; i++)
		json_builder_add_value (b, ppn_domain_info_to_json (g_ptr_array_index (domains, i)));
	json_builder_end_array (b);
	json_builder_end_object (b);
	return json_builder_get_root (b);
}

static void
ppn_heartbeat_sent_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(PpnHeartbeat) self = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) answer = ppn_http_send_json_finish (SOUP_SESSION (source), res, &error);

	self->in_flight = FALSE;
	if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || g_cancellable_is_cancelled (self->cancellable))
		return;
	ppn_heartbeat_report (self, error);
	/* the fleet may ask for another pace */
	if (answer != NULL && JSON_NODE_HOLDS_OBJECT (answer)) {
		JsonObject *obj = json_node_get_object (answer);
		gint64 interval = (gint64)self->interval;
		if (ppn_json_get_int (obj, "interval", FALSE, 1, 3600, &interval, NULL) &&
		    (guint)interval != self->interval) {
			g_message (_("The fleet asks for a heartbeat every %u s"), (guint)interval);
			self->interval = (guint)interval;
			ppn_heartbeat_schedule (self);
		}
	}
}

static void
ppn_heartbeat_listed_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(PpnHeartbeat) self = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) domains = ppn_domain_manager_list_finish (PPN_DOMAIN_MANAGER (source), res, &error);
	g_autoptr(JsonNode) body = NULL;
	g_autoptr(SoupMessage) msg = NULL;

	if (g_cancellable_is_cancelled (self->cancellable)) {
		self->in_flight = FALSE;
		return;
	}
	/* without the list the node still heartbeats, marked degraded (the
	 * manager logs the outage once), so the fleet neither gives it up nor
	 * reads the missing list as every VM gone */
	if (domains == NULL)
		g_debug ("heartbeat without domains: %s", error->message);
	g_clear_error (&error);
	body = ppn_heartbeat_build (self, domains);
	msg = ppn_http_request_new (SOUP_METHOD_POST, self->url, body, self->client_cert, &error);
	if (msg == NULL) {
		ppn_heartbeat_report (self, error);
		self->in_flight = FALSE;
		return;
	}
	ppn_http_send_json_async (self->session, msg, self->cancellable, ppn_heartbeat_sent_cb,
				  g_object_ref (self));
}

static gboolean
ppn_heartbeat_tick (gpointer user_data)
{
	PpnHeartbeat *self = user_data;

	if (self->in_flight) {
		g_debug ("previous heartbeat still running; skipping one");
		return G_SOURCE_CONTINUE;
	}
	self->in_flight = TRUE;
	ppn_domain_manager_list_async (self->manager, self->cancellable, ppn_heartbeat_listed_cb,
				       g_object_ref (self));
	return G_SOURCE_CONTINUE;
}

/* the first heartbeat goes out at once */
void
ppn_heartbeat_start (PpnHeartbeat *self)
{
	g_return_if_fail (PPN_IS_HEARTBEAT (self));
	ppn_heartbeat_schedule (self);
	ppn_heartbeat_tick (self);
}

void
ppn_heartbeat_stop (PpnHeartbeat *self)
{
	g_return_if_fail (PPN_IS_HEARTBEAT (self));
	g_clear_handle_id (&self->timeout_id, g_source_remove);
	g_cancellable_cancel (self->cancellable);
}

PpnHeartbeat *
ppn_heartbeat_new (const PpnAgentConfig *config,
		   PpnDomainManager *manager,
		   PpnImageCatalog *catalog,
		   GTlsCertificate *client_cert,
		   GTlsDatabase *ca,
		   const gchar *agent_url)
{
	PpnHeartbeat *self;

	g_return_val_if_fail (config != NULL, NULL);
	g_return_val_if_fail (PPN_IS_DOMAIN_MANAGER (manager), NULL);
	g_return_val_if_fail (catalog != NULL, NULL);
	g_return_val_if_fail (G_IS_TLS_CERTIFICATE (client_cert), NULL);
	g_return_val_if_fail (G_IS_TLS_DATABASE (ca), NULL);
	g_return_val_if_fail (agent_url != NULL, NULL);

	self = g_object_new (PPN_TYPE_HEARTBEAT, NULL);
	self->node_id = g_strdup (config->node_id);
	self->agent_url = g_strdup (agent_url);
	self->url = g_strconcat (config->fleet_url, PPN_HEARTBEAT_PATH, NULL);
	self->interval = config->heartbeat_interval;
	self->manager = g_object_ref (manager);
	self->catalog = catalog;
	self->client_cert = g_object_ref (client_cert);
	self->session = ppn_http_session_new (ca, PPN_HEARTBEAT_TIMEOUT);
	return self;
}

static void
ppn_heartbeat_dispose (GObject *object)
{
	PpnHeartbeat *self = PPN_HEARTBEAT (object);

	g_clear_handle_id (&self->timeout_id, g_source_remove);
	g_cancellable_cancel (self->cancellable);
	g_clear_object (&self->session);
	g_clear_object (&self->manager);
	g_clear_object (&self->client_cert);
	G_OBJECT_CLASS (ppn_heartbeat_parent_class)->dispose (object);
}

static void
ppn_heartbeat_finalize (GObject *object)
{
	PpnHeartbeat *self = PPN_HEARTBEAT (object);

	g_clear_object (&self->cancellable);
	g_free (self->node_id);
	g_free (self->agent_url);
	g_free (self->url);
	G_OBJECT_CLASS (ppn_heartbeat_parent_class)->finalize (object);
}

static void
ppn_heartbeat_class_init (PpnHeartbeatClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS (klass);

	object_class->dispose = ppn_heartbeat_dispose;
	object_class->finalize = ppn_heartbeat_finalize;
}

static void
ppn_heartbeat_init (PpnHeartbeat *self)
{
	self->cancellable = g_cancellable_new ();
}
