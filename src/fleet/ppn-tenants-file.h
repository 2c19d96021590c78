#pragma once

#include <glib.h>

#include "ppn-tenant.h"

G_BEGIN_DECLS

/* The tenants file: tenant name -> hash of its bearer token, max-vms.
 * Only the tenant proxy uses this. */
typedef struct _PpnTenantsFile PpnTenantsFile;

PpnTenantsFile *ppn_tenants_file_load (const gchar *path, GError **error);
void ppn_tenants_file_free (PpnTenantsFile *file);
guint ppn_tenants_file_get_size (PpnTenantsFile *file);
PpnTenant *ppn_tenants_file_authenticate (PpnTenantsFile *file, const gchar *token);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnTenantsFile, ppn_tenants_file_free)

G_END_DECLS
