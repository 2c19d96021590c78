#include "config.h"

#define G_LOG_DOMAIN "ppn-agent"

#include <stdio.h>

#include "ppn-agent-server.h"
#include "ppn-agent.h"
#include "ppn-domain-manager.h"
#include "ppn-error.h"
#include "ppn-heartbeat.h"
#include "ppn-http.h"
#include "ppn-i18n.h"
#include "ppn-image-catalog.h"
#include "ppn-tls.h"

/* libvirt unreachable at start: try again this often */
#define PPN_AGENT_RETRY_SECONDS 5

struct _PpnAgent {
	GObject parent_instance;

	PpnAgentConfig *config;
	GTlsCertificate *cert;
	GTlsDatabase *ca;
	PpnImageCatalog *catalog;
	PpnDomainManager *manager;
	PpnAgentServer *server;
	PpnHeartbeat *heartbeat;
	GCancellable *cancellable;
	guint retry_id;
	gboolean start_warned;
	GError *failure;
};

G_DEFINE_TYPE (PpnAgent, ppn_agent, G_TYPE_OBJECT)

enum { SIGNAL_FAILED, SIGNAL_LAST };
static guint ppn_agent_signals[SIGNAL_LAST] = {0};

static void ppn_agent_start_manager (PpnAgent *self);

static gboolean
ppn_agent_retry_cb (gpointer user_data)
{
	PpnAgent *self = user_data;

	self->retry_id = 0;
	ppn_agent_start_manager (self);
	return G_SOURCE_REMOVE;
}

/* only once the live domains' ports are known may a create come in */
static void
ppn_agent_manager_started_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(PpnAgent) self = user_data;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *agent_url = NULL;
	guint16 port = 0;

	if (g_cancellable_is_cancelled (self->cancellable))
		return;
	if (!ppn_domain_manager_start_finish (self->manager, res, &error)) {
		if (!self->start_warned)
			g_warning (_("Cannot start: %s (retrying every %d s)"), error->message,
				   PPN_AGENT_RETRY_SECONDS);
		self->start_warned = TRUE;
		self->retry_id = g_timeout_add_seconds (PPN_AGENT_RETRY_SECONDS, ppn_agent_retry_cb, self);
		return;
	}
	if (!ppn_agent_server_listen (self->server, self->config->listen, &port, &error)) {
		g_warning ("%s", error->message);
		self->failure = g_steal_pointer (&error);
		g_signal_emit (self, ppn_agent_signals[SIGNAL_FAILED], 0);
		return;
	}
	agent_url = ppn_agent_config_get_advertise_url (self->config, port);
	self->heartbeat = ppn_heartbeat_new (self->config, self->manager, self->catalog, self->cert, self->ca,
					     agent_url);
	ppn_heartbeat_start (self->heartbeat);

	/* tests and scripts read the bound port from this line */
	if (g_strrstr (self->config->listen_host, ":") != NULL)
		printf ("ppn-agentd: node %s listening on https://[%s]:%u\n", self->config->node_id,
			self->config->listen_host, port);
	else
		printf ("ppn-agentd: node %s listening on https://%s:%u\n", self->config->node_id,
			self->config->listen_host, port);
	fflush (stdout);
	g_message (_("Node %s: %u images, accel %s, heartbeats to %s as %s"), self->config->node_id,
		   ppn_image_catalog_get_count (self->catalog), ppn_domain_manager_get_accel (self->manager),
		   self->config->fleet_url, agent_url);
}

static void
ppn_agent_start_manager (PpnAgent *self)
{
	ppn_domain_manager_start_async (self->manager, self->cancellable, ppn_agent_manager_started_cb,
					g_object_ref (self));
}

void
ppn_agent_start (PpnAgent *self)
{
	g_return_if_fail (PPN_IS_AGENT (self));
	ppn_agent_start_manager (self);
}

/* a failure that ends the daemon (the listener could not bind) */
gboolean
ppn_agent_get_failed (PpnAgent *self, GError **error)
{
	g_return_val_if_fail (PPN_IS_AGENT (self), FALSE);
	if (self->failure == NULL)
		return FALSE;
	if (error != NULL)
		*error = g_error_copy (self->failure);
	return TRUE;
}

void
ppn_agent_stop (PpnAgent *self)
{
	g_return_if_fail (PPN_IS_AGENT (self));
	g_cancellable_cancel (self->cancellable);
	g_clear_handle_id (&self->retry_id, g_source_remove);
	if (self->heartbeat != NULL)
		ppn_heartbeat_stop (self->heartbeat);
	ppn_agent_server_disconnect (self->server);
}

void
ppn_agent_reload (PpnAgent *self)
{
	g_return_if_fail (PPN_IS_AGENT (self));
	ppn_image_catalog_rescan (self->catalog);
	g_message (_("Image catalog %s rescanned: %u images"), self->config->image_dir,
		   ppn_image_catalog_get_count (self->catalog));
}

PpnAgent *
ppn_agent_new (PpnAgentConfig *config, GError **error)
{
	g_autoptr(PpnAgent) self = g_object_new (PPN_TYPE_AGENT, NULL);

	g_return_val_if_fail (config != NULL, NULL);
	self->config = config;
	self->cert = ppn_tls_load_certificate (config->tls_cert, config->tls_key, error);
	if (self->cert == NULL)
		return NULL;
	self->ca = ppn_tls_load_ca (config->tls_ca, error);
	if (self->ca == NULL)
		return NULL;
	self->catalog = ppn_image_catalog_new (config->image_dir);
	ppn_image_catalog_rescan (self->catalog);
	self->manager = ppn_domain_manager_new (config, error);
	if (self->manager == NULL)
		return NULL;
	self->server = ppn_agent_server_new (config, self->manager, self->catalog, self->cert, self->ca, error);
	if (self->server == NULL)
		return NULL;
	return g_steal_pointer (&self);
}

static void
ppn_agent_dispose (GObject *object)
{
	PpnAgent *self = PPN_AGENT (object);

	g_cancellable_cancel (self->cancellable);
	g_clear_handle_id (&self->retry_id, g_source_remove);
	g_clear_object (&self->heartbeat);
	g_clear_object (&self->server);
	g_clear_object (&self->manager);
	g_clear_object (&self->cert);
	g_clear_object (&self->ca);
	G_OBJECT_CLASS (ppn_agent_parent_class)->dispose (object);
}

static void
ppn_agent_finalize (GObject *object)
{
	PpnAgent *self = PPN_AGENT (object);

	g_clear_pointer (&self->catalog, ppn_image_catalog_free);
	g_clear_pointer (&self->config, ppn_agent_config_free);
	g_clear_object (&self->cancellable);
	g_clear_error (&self->failure);
	G_OBJECT_CLASS (ppn_agent_parent_class)->finalize (object);
}

static void
ppn_agent_class_init (PpnAgentClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS (klass);

	object_class->dispose = ppn_agent_dispose;
	object_class->finalize = ppn_agent_finalize;

	/* emitted when the daemon cannot go on; ppn_agent_get_failed() says why */
	ppn_agent_signals[SIGNAL_FAILED] = g_signal_new ("failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
							 NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
ppn_agent_init (PpnAgent *self)
{
	self->cancellable = g_cancellable_new ();
}
