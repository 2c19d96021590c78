#pragma once

#include <glib-object.h>

#include "ppn-agent-client.h"
#include "ppn-audit.h"
#include "ppn-nodes.h"
#include "ppn-store.h"
#include "ppn-tenant.h"
#include "ppn-vm.h"

G_BEGIN_DECLS

/* The fleet controller: registry, quota gate, placement, the store, and
 * the calls to agents. Every tenant-facing entry point takes a typed
 * PpnTenant made by the tenant proxy; an object of another tenant is
 * reported exactly as a missing one. Main-loop only. */
#define PPN_TYPE_CONTROLLER (ppn_controller_get_type ())
G_DECLARE_FINAL_TYPE (PpnController, ppn_controller, PPN, CONTROLLER, GObject)

/* the ledger index of a request's record, when it has none */
#define PPN_RECEIPT_NONE G_MAXUINT64

PpnController *ppn_controller_new (PpnStore *store,
				   PpnAgentClient *agents,
				   PpnAudit *audit,
				   guint node_timeout,
				   guint lost_grace);
gboolean ppn_controller_restore (PpnController *self, GError **error);

/* Creates, deletes and shows end in an audit record, and their answer
 * comes once it is on disk; @receipt is its ledger index (or
 * PPN_RECEIPT_NONE), @request_id names the request in it. @req is taken. */
void ppn_controller_create_vm_async (PpnController *self,
				     PpnTenant *tenant,
				     PpnVmRequest *req,
				     const gchar *request_id,
				     GAsyncReadyCallback callback,
				     gpointer user_data);
PpnVm *ppn_controller_create_vm_finish (PpnController *self, GAsyncResult *res, guint64 *receipt, GError **error);
void ppn_controller_delete_vm_async (PpnController *self,
				     PpnTenant *tenant,
				     const gchar *id,
				     const gchar *request_id,
				     GAsyncReadyCallback callback,
				     gpointer user_data);
gboolean ppn_controller_delete_vm_finish (PpnController *self, GAsyncResult *res, guint64 *receipt, GError **error);
void ppn_controller_show_vm_async (PpnController *self,
				   PpnTenant *tenant,
				   const gchar *id,
				   const gchar *request_id,
				   GAsyncReadyCallback callback,
				   gpointer user_data);
PpnVm *ppn_controller_show_vm_finish (PpnController *self, GAsyncResult *res, GError **error);
GPtrArray *ppn_controller_list_vms (PpnController *self,
				    PpnTenant *tenant,
				    guint limit,
				    const gchar *page_token,
				    gchar **next_page_token,
				    GError **error);
guint ppn_controller_get_usage (PpnController *self, PpnTenant *tenant);
JsonNode *ppn_controller_get_images (PpnController *self);
JsonNode *ppn_controller_get_nodes (PpnController *self);
/* a PpnMetricsCollector: VMs by state, nodes, placement and heartbeat times */
void ppn_controller_collect_metrics (GString *out, gpointer controller);
void ppn_controller_set_placement (PpnController *self, PpnPlacement strategy);
gboolean ppn_controller_heartbeat (PpnController *self, const gchar *node_id, JsonObject *hb, GError **error);

G_END_DECLS
