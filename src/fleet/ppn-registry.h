#pragma once

#include <glib.h>

#include "ppn-vm.h"

G_BEGIN_DECLS

/* The in-memory index of live VM records (not deleted), by id and by
 * tenant. The store is the truth; this is rebuilt from it at startup.
 * Main-loop only. */
typedef struct _PpnRegistry PpnRegistry;

PpnRegistry *ppn_registry_new (void);
void ppn_registry_free (PpnRegistry *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnRegistry, ppn_registry_free)

void ppn_registry_add (PpnRegistry *self, PpnVm *vm);
void ppn_registry_remove (PpnRegistry *self, PpnVm *vm);
PpnVm *ppn_registry_lookup (PpnRegistry *self, const gchar *id);
PpnVm *ppn_registry_find_by_name (PpnRegistry *self, const gchar *tenant, const gchar *name);
guint ppn_registry_count_tenant (PpnRegistry *self, const gchar *tenant);
guint ppn_registry_get_size (PpnRegistry *self);
GPtrArray *ppn_registry_list_page (PpnRegistry *self,
				   const gchar *tenant,
				   gint64 after_created,
				   const gchar *after_id,
				   guint limit,
				   gboolean *more);
GList *ppn_registry_get_all (PpnRegistry *self);
GList *ppn_registry_get_node_ids (PpnRegistry *self);
GPtrArray *ppn_registry_node_vms (PpnRegistry *self, const gchar *node);

G_END_DECLS
