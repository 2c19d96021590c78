#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include <errno.h>
#include <glib-unix.h>
#include <glib/gstdio.h>

#include "ppn-agent-client.h"
#include "ppn-audit.h"
#include "ppn-controller.h"
#include "ppn-error.h"
#include "ppn-file-ledger.h"
#include "ppn-fleet.h"
#include "ppn-http.h"
#include "ppn-i18n.h"
#include "ppn-mesh.h"
#include "ppn-store.h"
#include "ppn-tenant-proxy.h"
#include "ppn-tls.h"

struct _PpnFleet {
	GObject parent_instance;
	PpnFleetConfig *config;
	GMainLoop *loop;
	PpnStore *store;
	PpnAudit *audit;
	PpnMetrics *metrics;
	PpnController *controller;
	PpnTenantProxy *proxy;
	PpnMesh *mesh;
	guint sigterm_id;
	guint sigint_id;
	guint sighup_id;
};

G_DEFINE_TYPE (PpnFleet, ppn_fleet, G_TYPE_OBJECT)

static gboolean
ppn_fleet_quit_cb (gpointer user_data)
{
	PpnFleet *self = PPN_FLEET (user_data);

	g_message ("stopping");
	g_main_loop_quit (self->loop);
	return G_SOURCE_CONTINUE;
}

static gboolean
ppn_fleet_reload_cb (gpointer user_data)
{
	PpnFleet *self = PPN_FLEET (user_data);
	g_autoptr(GError) error = NULL;

	/* after a rotation: the audit file is written under its name again */
	ppn_audit_reopen (self->audit);
	/* a broken file keeps the tenants we had */
	if (!ppn_tenant_proxy_reload (self->proxy, &error))
		g_warning ("reload refused, keeping the previous tenants: %s", error->message);
	return G_SOURCE_CONTINUE;
}

gboolean
ppn_fleet_start (PpnFleet *self, GError **error)
{
	g_autoptr(GTlsCertificate) cert = NULL;
	g_autoptr(GTlsDatabase) ca = NULL;
	g_autoptr(PpnAgentClient) agents = NULL;
	g_autoptr(PpnFileLedger) ledger = NULL;
	g_autofree gchar *db_path = NULL;

	g_return_val_if_fail (PPN_IS_FLEET (self), FALSE);
	cert = ppn_tls_load_certificate (self->config->tls_cert, self->config->tls_key, error);
	if (cert == NULL)
		return FALSE;
	ca = ppn_tls_load_ca (self->config->tls_ca, error);
	if (ca == NULL)
		return FALSE;
	if (g_mkdir_with_parents (self->config->state_dir, 0700) != 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Cannot create state directory %s: %s"),
			     self->config->state_dir, g_strerror (errno));
		return FALSE;
	}
	db_path = g_build_filename (self->config->state_dir, "fleet.db", NULL);
	if (!ppn_store_open (self->store, db_path, error))
		return FALSE;

	/* no audit trail, no service: both sinks must open before anything
	 * is answered */
	ledger = ppn_file_ledger_open (self->config->ledger_dir, error);
	if (ledger == NULL)
		return FALSE;
	self->audit = ppn_audit_new (self->config->audit_file, PPN_LEDGER (ledger), error);
	if (self->audit == NULL)
		return FALSE;

	agents = ppn_agent_client_new (ca, cert, self->config->agent_timeout);
	self->controller = ppn_controller_new (self->store, agents, self->audit, self->config->node_timeout,
					       self->config->lost_grace);
	ppn_controller_set_placement (self->controller, self->config->placement);
	g_message ("placement strategy: %s", ppn_placement_to_string (self->config->placement));
	/* the registry is whole before the first tenant request is accepted */
	if (!ppn_controller_restore (self->controller, error))
		return FALSE;
	self->proxy = ppn_tenant_proxy_new (self->controller, self->audit, self->config, cert, error);
	if (self->proxy == NULL)
		return FALSE;
	ppn_tenant_proxy_set_metrics (self->proxy, self->metrics);
	ppn_metrics_add_collector (self->metrics, ppn_audit_collect_metrics, self->audit);
	self->mesh = ppn_mesh_new (self->controller, cert, ca, self->config->mesh_listen, error);
	if (self->mesh == NULL)
		return FALSE;
	ppn_mesh_set_metrics (self->mesh, self->metrics);
	ppn_metrics_add_collector (self->metrics, ppn_controller_collect_metrics, self->controller);
	ppn_mesh_set_keep_alive (self->mesh, self->config->http_keep_alive);
	if (self->config->http_keep_alive)
		g_message ("HTTP keep-alive is on (libsoup %u.%u.%u)", soup_get_major_version (),
			   soup_get_minor_version (), soup_get_micro_version ());
	if (!ppn_tenant_proxy_listen (self->proxy, error))
		return FALSE;

	self->sigterm_id = g_unix_signal_add (SIGTERM, ppn_fleet_quit_cb, self);
	self->sigint_id = g_unix_signal_add (SIGINT, ppn_fleet_quit_cb, self);
	self->sighup_id = g_unix_signal_add (SIGHUP, ppn_fleet_reload_cb, self);
	g_printerr ("ppn-fleetd: tenant API on https://%s, mesh on https://%s (ports %u, %u)\n",
		    self->config->tenant_listen, self->config->mesh_listen,
		    ppn_tenant_proxy_get_port (self->proxy), ppn_mesh_get_port (self->mesh));
	return TRUE;
}

gboolean
ppn_fleet_run (PpnFleet *self, GError **error)
{
	g_return_val_if_fail (PPN_IS_FLEET (self), FALSE);
	g_main_loop_run (self->loop);
	return TRUE;
}

void
ppn_fleet_stop (PpnFleet *self)
{
	g_return_if_fail (PPN_IS_FLEET (self));
	g_main_loop_quit (self->loop);
}

static void
ppn_fleet_finalize (GObject *object)
{
	PpnFleet *self = PPN_FLEET (object);

	if (self->sigterm_id != 0)
		g_source_remove (self->sigterm_id);
	if (self->sigint_id != 0)
		g_source_remove (self->sigint_id);
	if (self->sighup_id != 0)
		g_source_remove (self->sighup_id);
	g_clear_object (&self->proxy);
	g_clear_object (&self->mesh);
	g_clear_object (&self->controller);
	g_clear_object (&self->audit);
	g_clear_pointer (&self->metrics, ppn_metrics_free);
	g_clear_object (&self->store);
	g_clear_pointer (&self->loop, g_main_loop_unref);
	g_clear_pointer (&self->config, ppn_fleet_config_free);
	G_OBJECT_CLASS (ppn_fleet_parent_class)->finalize (object);
}

static void
ppn_fleet_class_init (PpnFleetClass *klass)
{
	G_OBJECT_CLASS (klass)->finalize = ppn_fleet_finalize;
}

static void
ppn_fleet_init (PpnFleet *self)
{
	self->loop = g_main_loop_new (NULL, FALSE);
	self->store = ppn_store_new ();
	self->metrics = ppn_metrics_new ();
}

PpnFleet *
ppn_fleet_new (PpnFleetConfig *config)
{
	PpnFleet *self = g_object_new (PPN_TYPE_FLEET, NULL);

	self->config = config;
	return self;
}
