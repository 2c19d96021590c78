#pragma once

#include <glib-object.h>

#include "ppn-vm.h"

G_BEGIN_DECLS

/* the only code that talks to sqlite */
#define PPN_TYPE_STORE (ppn_store_get_type ())
G_DECLARE_FINAL_TYPE (PpnStore, ppn_store, PPN, STORE, GObject)

PpnStore *ppn_store_new (void);
gboolean ppn_store_open (PpnStore *self, const gchar *path, GError **error);
gboolean ppn_store_begin (PpnStore *self, GError **error);
gboolean ppn_store_commit (PpnStore *self, GError **error);
gboolean ppn_store_insert_vm (PpnStore *self, const PpnVm *vm, GError **error);
gboolean ppn_store_update_vm (PpnStore *self, const PpnVm *vm, GError **error);
PpnVm *ppn_store_get_vm (PpnStore *self, const gchar *id, GError **error);
GPtrArray *ppn_store_load_vms (PpnStore *self, gboolean include_deleted, GError **error);

G_END_DECLS
