#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A tenant as the fleet controller sees it: who, and how much it may
 * have. It is made only by the tenant proxy from a verified token and is
 * passed inward as this type, never as a string from the wire. */
typedef struct _PpnTenant PpnTenant;

PpnTenant *ppn_tenant_new (const gchar *name, guint max_vms);
PpnTenant *ppn_tenant_ref (PpnTenant *tenant);
void ppn_tenant_unref (PpnTenant *tenant);
const gchar *ppn_tenant_get_name (const PpnTenant *tenant);
guint ppn_tenant_get_max_vms (const PpnTenant *tenant);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnTenant, ppn_tenant_unref)

G_END_DECLS
