#pragma once

#include <gio/gio.h>

#include "ppn-controller.h"
#include "ppn-fleet-config.h"
#include "ppn-metrics.h"

G_BEGIN_DECLS

/* The tenant proxy: the only external entry point and the only code that
 * sees bearer tokens. It turns a token into a PpnTenant and calls the
 * controller with it. */
#define PPN_TYPE_TENANT_PROXY (ppn_tenant_proxy_get_type ())
G_DECLARE_FINAL_TYPE (PpnTenantProxy, ppn_tenant_proxy, PPN, TENANT_PROXY, GObject)

PpnTenantProxy *ppn_tenant_proxy_new (PpnController *controller,
				      PpnAudit *audit,
				      const PpnFleetConfig *config,
				      GTlsCertificate *cert,
				      GError **error);
gboolean ppn_tenant_proxy_reload (PpnTenantProxy *self, GError **error);
gboolean ppn_tenant_proxy_listen (PpnTenantProxy *self, GError **error);
/* observes every answer into @metrics (which must outlive the proxy) and
 * adds the gate's queues to its scrape */
void ppn_tenant_proxy_set_metrics (PpnTenantProxy *self, PpnMetrics *metrics);
guint16 ppn_tenant_proxy_get_port (PpnTenantProxy *self);

G_END_DECLS
