#pragma once

/* for tests only: what the daemon never does by itself */
#include "ppn-domain-manager.h"

G_BEGIN_DECLS

/* drop the connection as if libvirtd had gone away, and connect to @uri
 * from now on (an unreachable one plays a libvirtd that is down) */
void ppn_domain_manager_lose_connection (PpnDomainManager *self, const gchar *uri);

G_END_DECLS
