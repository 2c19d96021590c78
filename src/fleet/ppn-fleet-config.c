#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include "ppn-config.h"
#include "ppn-error.h"
#include "ppn-fleet-config.h"
#include "ppn-http.h"
#include "ppn-i18n.h"

void
ppn_fleet_config_free (PpnFleetConfig *config)
{
	if (config == NULL)
		return;
	g_free (config->path);
	g_free (config->tenant_listen);
	g_free (config->mesh_listen);
	g_free (config->state_dir);
	g_free (config->tenants_file);
	g_free (config->audit_file);
	g_free (config->ledger_dir);
	g_free (config->tls_ca);
	g_free (config->tls_cert);
	g_free (config->tls_key);
	g_free (config);
}

PpnFleetConfig *
ppn_fleet_config_load (const gchar *path, GError **error)
{
	static const gchar *const groups[] = {"fleet", "tls", NULL};
	static const gchar *const fleet_keys[] = {
		"tenant-listen", "mesh-listen", "state-dir", "tenants-file", "node-timeout", "lost-grace",
		"agent-timeout", "max-vcpus", "max-memory-mib", "max-forwards", "max-body", "max-inflight",
		"audit-file", "ledger-dir", "placement", "http-keep-alive", NULL};
	static const gchar *const tls_keys[] = {"ca", "cert", "key", NULL};
	static const gchar *const *const keys[] = {fleet_keys, tls_keys};
	g_autoptr(GKeyFile) kf = NULL;
	g_autoptr(PpnFleetConfig) config = g_new0 (PpnFleetConfig, 1);
	g_autofree gchar *host = NULL;
	g_autofree gchar *placement = NULL;
	g_autofree gchar *keep_alive = NULL;
	guint16 port;
	guint64 v;

	g_return_val_if_fail (path != NULL, NULL);
	kf = ppn_config_load (path, error);
	if (kf == NULL || !ppn_config_check_keys (kf, path, groups, keys, error))
		return NULL;

	config->path = g_canonicalize_filename (path, NULL);
	config->tenant_listen = ppn_config_get_string (kf, "fleet", "tenant-listen", "127.0.0.1:8443");
	config->mesh_listen = ppn_config_get_string (kf, "fleet", "mesh-listen", "127.0.0.1:9443");
	config->state_dir = ppn_config_get_path (kf, config->path, "fleet", "state-dir",
						 PPN_LOCALSTATEDIR "/fleet");
	config->tenants_file = ppn_config_get_path (kf, config->path, "fleet", "tenants-file",
						    PPN_SYSCONFDIR "/tenants.conf");
	{
		g_autofree gchar *audit = g_build_filename (config->state_dir, "audit.log", NULL);
		g_autofree gchar *ledger = g_build_filename (config->state_dir, "ledger", NULL);
		config->audit_file = ppn_config_get_path (kf, config->path, "fleet", "audit-file", audit);
		config->ledger_dir = ppn_config_get_path (kf, config->path, "fleet", "ledger-dir", ledger);
	}
	config->tls_ca = ppn_config_get_path (kf, config->path, "tls", "ca", PPN_SYSCONFDIR "/ca.pem");
	config->tls_cert = ppn_config_get_path (kf, config->path, "tls", "cert", PPN_SYSCONFDIR "/fleet.pem");
	config->tls_key = ppn_config_get_path (kf, config->path, "tls", "key", PPN_SYSCONFDIR "/fleet-key.pem");

	if (!ppn_config_parse_address (config->tenant_listen, &host, &port, error)) {
		g_prefix_error (error, "%s: [fleet] tenant-listen: ", path);
		return NULL;
	}
	g_clear_pointer (&host, g_free);
	if (!ppn_config_parse_address (config->mesh_listen, &host, &port, error)) {
		g_prefix_error (error, "%s: [fleet] mesh-listen: ", path);
		return NULL;
	}
	if (!ppn_config_get_uint (kf, "fleet", "node-timeout", 15, 1, 3600, &v, error))
		return NULL;
	config->node_timeout = (guint)v;
	if (!ppn_config_get_uint (kf, "fleet", "lost-grace", 30, 1, 86400, &v, error))
		return NULL;
	config->lost_grace = (guint)v;
	if (!ppn_config_get_uint (kf, "fleet", "agent-timeout", 120, 1, 3600, &v, error))
		return NULL;
	config->agent_timeout = (guint)v;
	if (!ppn_config_get_uint (kf, "fleet", "max-vcpus", 8, 1, 1024, &v, error))
		return NULL;
	config->max_vcpus = (guint)v;
	if (!ppn_config_get_uint (kf, "fleet", "max-memory-mib", 16384, 64, 16 * 1024 * 1024, &v, error))
		return NULL;
	config->max_memory_mib = (guint)v;
	if (!ppn_config_get_uint (kf, "fleet", "max-forwards", 8, 0, 64, &v, error))
		return NULL;
	config->max_forwards = (guint)v;
	if (!ppn_config_get_uint (kf, "fleet", "max-body", 64 * 1024, 1024, 16 * 1024 * 1024, &v, error))
		return NULL;
	config->max_body = (gsize)v;
	if (!ppn_config_get_uint (kf, "fleet", "max-inflight", 32, 1, 100000, &v, error))
		return NULL;
	config->max_inflight = (guint)v;
	placement = ppn_config_get_string (kf, "fleet", "placement", "spread");
	if (!ppn_placement_from_string (placement, &config->placement)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: [fleet] placement: expected spread or pack, got '%s'"), path, placement);
		return NULL;
	}
	keep_alive = ppn_config_get_string (kf, "fleet", "http-keep-alive", "auto");
	if (g_strcmp0 (keep_alive, "auto") == 0) {
		config->http_keep_alive = ppn_http_keep_alive_is_safe ();
	} else if (g_strcmp0 (keep_alive, "yes") == 0 || g_strcmp0 (keep_alive, "no") == 0) {
		config->http_keep_alive = g_strcmp0 (keep_alive, "yes") == 0;
	} else {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("%s: [fleet] http-keep-alive must be auto, yes or no, not '%s'"), path, keep_alive);
		return NULL;
	}
	return g_steal_pointer (&config);
}
