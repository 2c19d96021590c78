#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include "ppn-tenant.h"

struct _PpnTenant {
	gint refcount;
	gchar *name;
	guint max_vms;
};

PpnTenant *
ppn_tenant_new (const gchar *name, guint max_vms)
{
	PpnTenant *tenant = g_new0 (PpnTenant, 1);

	g_return_val_if_fail (name != NULL, NULL);
	tenant->refcount = 1;
	tenant->name = g_strdup (name);
	tenant->max_vms = max_vms;
	return tenant;
}

PpnTenant *
ppn_tenant_ref (PpnTenant *tenant)
{
	g_return_val_if_fail (tenant != NULL, NULL);
	g_atomic_int_inc (&tenant->refcount);
	return tenant;
}

void
ppn_tenant_unref (PpnTenant *tenant)
{
	if (tenant == NULL || !g_atomic_int_dec_and_test (&tenant->refcount))
		return;
	g_free (tenant->name);
	g_free (tenant);
}

const gchar *
ppn_tenant_get_name (const PpnTenant *tenant)
{
	g_return_val_if_fail (tenant != NULL, NULL);
	return tenant->name;
}

guint
ppn_tenant_get_max_vms (const PpnTenant *tenant)
{
	g_return_val_if_fail (tenant != NULL, 0);
	return tenant->max_vms;
}
