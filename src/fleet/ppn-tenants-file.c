#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include <string.h>

#include "ppn-config.h"
#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-i18n.h"
#include "ppn-tenants-file.h"
#include "ppn-token.h"

#define PPN_TENANT_GROUP_PREFIX "tenant "

typedef struct {
	PpnTenant *tenant;
	guint8 digest[PPN_TOKEN_DIGEST_LEN];
} PpnTenantEntry;

struct _PpnTenantsFile {
	GArray *entries;
};

static void
ppn_tenant_entry_clear (PpnTenantEntry *entry)
{
	g_clear_pointer (&entry->tenant, ppn_tenant_unref);
}

void
ppn_tenants_file_free (PpnTenantsFile *file)
{
	if (file == NULL)
		return;
	g_array_unref (file->entries);
	g_free (file);
}

static gboolean
ppn_tenants_file_load_group (PpnTenantsFile *file,
			     GKeyFile *kf,
			     const gchar *path,
			     const gchar *group,
			     GError **error)
{
	const gchar *name = group + strlen (PPN_TENANT_GROUP_PREFIX);
	g_autofree gchar *hash = NULL;
	PpnTenantEntry entry = {NULL, {0}};
	guint64 max_vms;
	g_auto(GStrv) keys = g_key_file_get_keys (kf, group, NULL, NULL);

	if (!ppn_name_validate ("tenant", name, error)) {
		g_prefix_error (error, "%s: [%s]: ", path, group);
		return FALSE;
	}
	for (guint i = 0; keys != NULL && keys[i] != NULL; i++) {
		if (g_strcmp0 (keys[i], "token-hash") != 0 && g_strcmp0 (keys[i], "max-vms") != 0) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("%s: unknown key '%s' in group [%s]"), path, keys[i], group);
			return FALSE;
		}
	}
	hash = ppn_config_get_string (kf, group, "token-hash", NULL);
	if (!ppn_token_hash_parse (hash, entry.digest, error)) {
		g_prefix_error (error, "%s: [%s] token-hash: ", path, group);
		return FALSE;
	}
	if (!ppn_config_get_uint (kf, group, "max-vms", 4, 0, 100000, &max_vms, error)) {
		g_prefix_error (error, "%s: ", path);
		return FALSE;
	}
	for (guint i = 0; i < file->entries->len; i++) {
		PpnTenantEntry *other = &g_array_index (file->entries, PpnTenantEntry, i);
		if (memcmp (other->digest, entry.digest, sizeof entry.digest) == 0) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("%s: tenants %s and %s have the same token hash"), path,
				     ppn_tenant_get_name (other->tenant), name);
			return FALSE;
		}
	}
	entry.tenant = ppn_tenant_new (name, (guint)max_vms);
	g_array_append_val (file->entries, entry);
	return TRUE;
}

PpnTenantsFile *
ppn_tenants_file_load (const gchar *path, GError **error)
{
	g_autoptr(PpnTenantsFile) file = g_new0 (PpnTenantsFile, 1);
	g_autoptr(GKeyFile) kf = ppn_config_load (path, error);
	g_auto(GStrv) groups = NULL;

	if (kf == NULL)
		return NULL;
	file->entries = g_array_new (FALSE, TRUE, sizeof (PpnTenantEntry));
	g_array_set_clear_func (file->entries, (GDestroyNotify)ppn_tenant_entry_clear);
	groups = g_key_file_get_groups (kf, NULL);
	for (guint i = 0; groups[i] != NULL; i++) {
		if (!g_str_has_prefix (groups[i], PPN_TENANT_GROUP_PREFIX)) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("%s: unknown group [%s]; tenants are [tenant NAME]"), path, groups[i]);
			return NULL;
		}
		if (!ppn_tenants_file_load_group (file, kf, path, groups[i], error))
			return NULL;
	}
	return g_steal_pointer (&file);
}

guint
ppn_tenants_file_get_size (PpnTenantsFile *file)
{
	g_return_val_if_fail (file != NULL, 0);
	return file->entries->len;
}

/* hash the presented token, then compare fixed-length digests in constant
 * time against every entry, so neither the token's length nor how much of
 * it matches shows in the timing */
PpnTenant *
ppn_tenants_file_authenticate (PpnTenantsFile *file, const gchar *token)
{
	guint8 digest[PPN_TOKEN_DIGEST_LEN];
	PpnTenant *found = NULL;

	g_return_val_if_fail (file != NULL, NULL);
	if (token == NULL || !ppn_token_digest (token, digest))
		return NULL;
	for (guint i = 0; i < file->entries->len; i++) {
		PpnTenantEntry *entry = &g_array_index (file->entries, PpnTenantEntry, i);
		gboolean match = ppn_token_digest_equal (entry->digest, digest);
		if (match && found == NULL)
			found = entry->tenant;
	}
	return found != NULL ? ppn_tenant_ref (found) : NULL;
}
