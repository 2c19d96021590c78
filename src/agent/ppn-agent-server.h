#pragma once

#include <gio/gio.h>

#include "ppn-agent-config.h"
#include "ppn-domain-manager.h"
#include "ppn-image-catalog.h"

G_BEGIN_DECLS

/* the agent API (docs/api.md): mutual TLS, callers with a fleet
 * certificate only */
#define PPN_TYPE_AGENT_SERVER (ppn_agent_server_get_type ())
G_DECLARE_FINAL_TYPE (PpnAgentServer, ppn_agent_server, PPN, AGENT_SERVER, GObject)

/* @catalog is borrowed and must outlive the server */
PpnAgentServer *ppn_agent_server_new (const PpnAgentConfig *config,
				      PpnDomainManager *manager,
				      PpnImageCatalog *catalog,
				      GTlsCertificate *cert,
				      GTlsDatabase *client_ca,
				      GError **error);
gboolean ppn_agent_server_listen (PpnAgentServer *self, const gchar *address, guint16 *bound_port, GError **error);
void ppn_agent_server_disconnect (PpnAgentServer *self);

G_END_DECLS
