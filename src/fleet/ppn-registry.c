#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include "ppn-registry.h"

struct _PpnRegistry {
	GHashTable *by_id;     /* id -> PpnVm (ref) */
	GHashTable *by_tenant; /* tenant -> GPtrArray of PpnVm, ordered by (created_at, id) */
	GHashTable *by_node;   /* node -> GHashTable id -> PpnVm (borrowed from by_id) */
};

PpnRegistry *
ppn_registry_new (void)
{
	PpnRegistry *self = g_new0 (PpnRegistry, 1);

	self->by_id = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify)ppn_vm_unref);
	self->by_tenant = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
						 (GDestroyNotify)g_ptr_array_unref);
	self->by_node = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_hash_table_unref);
	return self;
}

void
ppn_registry_free (PpnRegistry *self)
{
	if (self == NULL)
		return;
	g_hash_table_unref (self->by_node);
	g_hash_table_unref (self->by_tenant);
	g_hash_table_unref (self->by_id);
	g_free (self);
}

static gint
ppn_registry_cmp (gint64 created_a, const gchar *id_a, const PpnVm *b)
{
	if (created_a != b->created_at)
		return created_a < b->created_at ? -1 : 1;
	return g_strcmp0 (id_a, b->id);
}

/* index of the first element greater than (created, id) */
static guint
ppn_registry_upper_bound (GPtrArray *list, gint64 created, const gchar *id)
{
	guint lo = 0, hi = list->len;

	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		if (ppn_registry_cmp (created, id, g_ptr_array_index (list, mid)) >= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void
ppn_registry_add (PpnRegistry *self, PpnVm *vm)
{
	GPtrArray *list;

	g_return_if_fail (self != NULL && vm != NULL);
	g_return_if_fail (!g_hash_table_contains (self->by_id, vm->id));
	g_hash_table_insert (self->by_id, vm->id, ppn_vm_ref (vm));
	list = g_hash_table_lookup (self->by_tenant, vm->tenant);
	if (list == NULL) {
		list = g_ptr_array_new_with_free_func ((GDestroyNotify)ppn_vm_unref);
		g_hash_table_insert (self->by_tenant, g_strdup (vm->tenant), list);
	}
	g_ptr_array_insert (list, (gint)ppn_registry_upper_bound (list, vm->created_at, vm->id), ppn_vm_ref (vm));
	if (vm->node != NULL) {
		GHashTable *on_node = g_hash_table_lookup (self->by_node, vm->node);
		if (on_node == NULL) {
			on_node = g_hash_table_new (g_str_hash, g_str_equal);
			g_hash_table_insert (self->by_node, g_strdup (vm->node), on_node);
		}
		g_hash_table_insert (on_node, vm->id, vm);
	}
}

void
ppn_registry_remove (PpnRegistry *self, PpnVm *vm)
{
	GPtrArray *list;
	g_autoptr(PpnVm) keep = NULL;

	g_return_if_fail (self != NULL && vm != NULL);
	keep = ppn_vm_ref (vm);
	if (vm->node != NULL) {
		GHashTable *on_node = g_hash_table_lookup (self->by_node, vm->node);
		if (on_node != NULL) {
			g_hash_table_remove (on_node, vm->id);
			if (g_hash_table_size (on_node) == 0)
				g_hash_table_remove (self->by_node, vm->node);
		}
	}
	list = g_hash_table_lookup (self->by_tenant, vm->tenant);
	if (list != NULL) {
		g_ptr_array_remove (list, vm);
		if (list->len == 0)
			g_hash_table_remove (self->by_tenant, vm->tenant);
	}
	g_hash_table_remove (self->by_id, vm->id);
}

PpnVm *
ppn_registry_lookup (PpnRegistry *self, const gchar *id)
{
	g_return_val_if_fail (self != NULL, NULL);
	return id != NULL ? g_hash_table_lookup (self->by_id, id) : NULL;
}

PpnVm *
ppn_registry_find_by_name (PpnRegistry *self, const gchar *tenant, const gchar *name)
{
	GPtrArray *list = g_hash_table_lookup (self->by_tenant, tenant);

	for (guint i = 0; list != NULL && i < list->len; i++) {
		PpnVm *vm = g_ptr_array_index (list, i);
		if (g_strcmp0 (vm->name, name) == 0)
			return vm;
	}
	return NULL;
}

guint
ppn_registry_count_tenant (PpnRegistry *self, const gchar *tenant)
{
	GPtrArray *list = g_hash_table_lookup (self->by_tenant, tenant);

	return list != NULL ? list->len : 0;
}

guint
ppn_registry_get_size (PpnRegistry *self)
{
	return g_hash_table_size (self->by_id);
}

/* the tenant's own list only: the cost does not grow with other tenants'
 * VMs, and a cursor from anyone else's list cannot point into it */
GPtrArray *
ppn_registry_list_page (PpnRegistry *self,
			const gchar *tenant,
			gint64 after_created,
			const gchar *after_id,
			guint limit,
			gboolean *more)
{
	GPtrArray *list = g_hash_table_lookup (self->by_tenant, tenant);
	GPtrArray *page = g_ptr_array_new_with_free_func ((GDestroyNotify)ppn_vm_unref);
	guint start = 0;

	*more = FALSE;
	if (list == NULL)
		return page;
	if (after_id != NULL)
		start = ppn_registry_upper_bound (list, after_created, after_id);
	for (guint i = start; i < list->len; i++) {
		if (page->len == limit) {
			*more = TRUE;
			break;
		}
		g_ptr_array_add (page, ppn_vm_ref (g_ptr_array_index (list, i)));
	}
	return page;
}

GList *
ppn_registry_get_all (PpnRegistry *self)
{
	return g_hash_table_get_values (self->by_id);
}

/* the nodes that hold at least one VM (the list's strings belong to the
 * registry: valid until a VM is added or removed) */
GList *
ppn_registry_get_node_ids (PpnRegistry *self)
{
	return g_hash_table_get_keys (self->by_node);
}

/* the VMs placed on @node, as a snapshot the caller may change states in */
GPtrArray *
ppn_registry_node_vms (PpnRegistry *self, const gchar *node)
{
	GHashTable *on_node = g_hash_table_lookup (self->by_node, node);
	GPtrArray *vms = g_ptr_array_new_with_free_func ((GDestroyNotify)ppn_vm_unref);
	GHashTableIter iter;
	PpnVm *vm;

	if (on_node == NULL)
		return vms;
	g_hash_table_iter_init (&iter, on_node);
	while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&vm))
		g_ptr_array_add (vms, ppn_vm_ref (vm));
	return vms;
}
