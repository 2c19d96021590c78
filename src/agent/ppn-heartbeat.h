#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "ppn-agent-config.h"
#include "ppn-domain-manager.h"
#include "ppn-image-catalog.h"

G_BEGIN_DECLS

/* POST /mesh/v1/heartbeat every interval, never two at once */
#define PPN_TYPE_HEARTBEAT (ppn_heartbeat_get_type ())
G_DECLARE_FINAL_TYPE (PpnHeartbeat, ppn_heartbeat, PPN, HEARTBEAT, GObject)

/* @catalog is borrowed and must outlive the heartbeat */
PpnHeartbeat *ppn_heartbeat_new (const PpnAgentConfig *config,
				 PpnDomainManager *manager,
				 PpnImageCatalog *catalog,
				 GTlsCertificate *client_cert,
				 GTlsDatabase *ca,
				 const gchar *agent_url);
void ppn_heartbeat_start (PpnHeartbeat *self);
void ppn_heartbeat_stop (PpnHeartbeat *self);
/* @domains NULL: libvirt is unreachable, and the heartbeat says so rather
 * than claiming the node runs nothing */
JsonNode *ppn_heartbeat_build (PpnHeartbeat *self, GPtrArray *domains);

G_END_DECLS
