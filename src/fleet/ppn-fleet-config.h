#pragma once

#include <glib.h>

#include "ppn-nodes.h"

G_BEGIN_DECLS

typedef struct {
	gchar *path;
	gchar *tenant_listen;
	gchar *mesh_listen;
	gchar *state_dir;
	gchar *tenants_file;
	gchar *audit_file;	/* the append-only JSON-lines audit file */
	gchar *ledger_dir;	/* the WORM ledger and its key */
	gchar *tls_ca;
	gchar *tls_cert;
	gchar *tls_key;
	guint node_timeout;	/* seconds without a heartbeat before a node is not placed on */
	guint lost_grace;	/* seconds a live node may not report a VM before it is lost */
	guint agent_timeout;	/* seconds an agent call may take */
	guint max_vcpus;	/* per VM */
	guint max_memory_mib;	/* per VM */
	guint max_forwards;	/* per VM */
	gsize max_body;		/* bytes */
	guint max_inflight;	/* a tenant's creates and deletes waiting at once */
	PpnPlacement placement; /* which node that fits gets a VM */
	gboolean http_keep_alive; /* http-keep-alive, "auto" resolved against the libsoup in use */
} PpnFleetConfig;

PpnFleetConfig *ppn_fleet_config_load (const gchar *path, GError **error);
void ppn_fleet_config_free (PpnFleetConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnFleetConfig, ppn_fleet_config_free)

G_END_DECLS
