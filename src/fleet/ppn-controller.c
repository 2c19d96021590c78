#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include <string.h>

#include "ppn-controller.h"
#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppn-metrics.h"
#include "ppn-nodes.h"
#include "ppn-registry.h"

struct _PpnController {
	GObject parent_instance;
	PpnStore *store;
	PpnAgentClient *agents;
	PpnAudit *audit;
	PpnRegistry *registry;
	PpnNodes *nodes;
	GHashTable *delete_waiters; /* vm id -> GPtrArray of GTask */
	gint64 started;		    /* monotonic usec */
	gint64 node_timeout;	    /* usec */
	gint64 lost_grace;	    /* usec */
	guint tick_id;
	PpnHistogram place_seconds;	/* choosing a node */
	PpnHistogram heartbeat_seconds; /* checking and reconciling one heartbeat */
};

typedef struct {
	PpnController *self;
	PpnVm *vm;
} PpnControllerOp;

static PpnControllerOp *
ppn_controller_op_new (PpnController *self, PpnVm *vm)
{
	PpnControllerOp *op = g_new0 (PpnControllerOp, 1);

	op->self = g_object_ref (self);
	op->vm = ppn_vm_ref (vm);
	return op;
}

static void
ppn_controller_op_free (PpnControllerOp *op)
{
	g_object_unref (op->self);
	ppn_vm_unref (op->vm);
	g_free (op);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnControllerOp, ppn_controller_op_free)

/* A tenant's create, delete or show, through its steps: every one ends in
 * an audit record, written before the tenant hears the answer. */
typedef struct {
	const gchar *op; /* "create", "destroy", "show" */
	PpnTenant *tenant;
	PpnVmRequest *req; /* create only */
	gchar *asked_id;   /* the id in the request, as sent */
	gchar *vm_id;	   /* the same, when it is a VM id at all: what is recorded */
	gchar *request_id;
	PpnVm *vm;
	GError *error;	 /* the answer, once the record of it is written */
	guint64 receipt; /* ledger index of that record */
	gchar *detail;	 /* for operators only, in the audit file */
} PpnLifecycle;

static void
ppn_lifecycle_free (PpnLifecycle *lc)
{
	ppn_tenant_unref (lc->tenant);
	g_clear_pointer (&lc->req, ppn_vm_request_free);
	g_free (lc->asked_id);
	g_free (lc->vm_id);
	g_free (lc->request_id);
	g_clear_pointer (&lc->vm, ppn_vm_unref);
	g_clear_error (&lc->error);
	g_free (lc->detail);
	g_free (lc);
}

static GTask *
ppn_lifecycle_task_new (PpnController *self,
			const gchar *op,
			PpnTenant *tenant,
			const gchar *vm_id,
			const gchar *request_id,
			gpointer source_tag,
			GAsyncReadyCallback callback,
			gpointer user_data)
{
	GTask *task = g_task_new (self, NULL, callback, user_data);
	PpnLifecycle *lc = g_new0 (PpnLifecycle, 1);

	lc->op = op;
	lc->tenant = ppn_tenant_ref (tenant);
	/* only a well-formed id is put on the record: anything else a
	 * tenant sends (a token, bytes that are not UTF-8, 60 KB) is not */
	lc->asked_id = g_strdup (vm_id);
	lc->vm_id = vm_id != NULL && ppn_vm_id_validate (vm_id, NULL) ? g_strdup (vm_id) : NULL;
	lc->request_id = g_strdup (request_id);
	lc->receipt = PPN_RECEIPT_NONE;
	g_task_set_source_tag (task, source_tag);
	g_task_set_task_data (task, lc, (GDestroyNotify)ppn_lifecycle_free);
	return task;
}

static void ppn_controller_answer (PpnController *self, GTask *task, const gchar *outcome, GError *error);

G_DEFINE_TYPE (PpnController, ppn_controller, G_TYPE_OBJECT)

/* One message for a VM that does not exist and for one that belongs to
 * someone else, so the answer tells nothing about other tenants. */
static void
ppn_controller_set_not_found (GError **error)
{
	g_set_error_literal (error, PPN_ERROR, PPN_ERROR_NOT_FOUND, _("No such VM"));
}

/* the single ownership check every tenant path goes through; @why, for
 * the operators' audit file only, says which of the two it was */
static PpnVm *
ppn_controller_lookup_owned_why (PpnController *self, PpnTenant *tenant, const gchar *id, gchar **why, GError **error)
{
	PpnVm *vm = ppn_registry_lookup (self->registry, id);

	if (vm == NULL || g_strcmp0 (vm->tenant, ppn_tenant_get_name (tenant)) != 0) {
		if (why != NULL)
			*why = g_strdup (vm != NULL			  ? "the VM belongs to another tenant"
					 : ppn_vm_id_validate (id, NULL) ? "no such VM"
									  : "not a VM id");
		ppn_controller_set_not_found (error);
		return NULL;
	}
	return vm;
}


static gboolean
ppn_controller_set_state (PpnController *self, PpnVm *vm, PpnVmState state, GError **error)
{
	PpnVmState old = vm->state;

	vm->state = state;
	vm->updated_at = g_get_real_time ();
	if (!ppn_store_update_vm (self->store, vm, error)) {
		vm->state = old;
		return FALSE;
	}
	return TRUE;
}

/* a VM leaves the registry: its quota slot and its node's room are free */
static void
ppn_controller_forget (PpnController *self, PpnVm *vm)
{
	PpnNode *node = ppn_nodes_lookup (self->nodes, vm->node);

	if (node != NULL)
		ppn_nodes_release (node, vm->id);
	ppn_registry_remove (self->registry, vm);
}

gboolean
ppn_controller_restore (PpnController *self, GError **error)
{
	gint64 start = g_get_monotonic_time ();
	g_autoptr(GPtrArray) vms = ppn_store_load_vms (self->store, FALSE, error);
	guint restored = 0;

	if (vms == NULL)
		return FALSE;
	for (guint i = 0; i < vms->len; i++) {
		PpnVm *vm = g_ptr_array_index (vms, i);
		if (vm->state == PPN_VM_STATE_FAILED || vm->state == PPN_VM_STATE_DELETED)
			continue;
		ppn_registry_add (self->registry, vm);
		/* a lost VM runs nowhere: only its quota slot counts */
		if (vm->node != NULL && vm->state != PPN_VM_STATE_LOST)
			ppn_nodes_reserve (ppn_nodes_ensure (self->nodes, vm->node), vm->id, vm->vcpus,
					   vm->memory_mib, vm->forwards->len);
		restored++;
	}
	g_message ("restored %u VM records in %.1f ms", restored,
		   (g_get_monotonic_time () - start) / 1000.0);
	return TRUE;
}

/* ---- destroy ----------------------------------------------------------- */

/* Tenants' DELETEs waiting for a VM to be gone: those that came while its
 * create was in flight, or while another destroy was. */
static void
ppn_controller_add_waiter (PpnController *self, PpnVm *vm, GTask *task)
{
	GPtrArray *waiters = g_hash_table_lookup (self->delete_waiters, vm->id);

	if (waiters == NULL) {
		waiters = g_ptr_array_new_with_free_func (g_object_unref);
		g_hash_table_insert (self->delete_waiters, g_strdup (vm->id), waiters);
	}
	g_ptr_array_add (waiters, task);
}

static void
ppn_controller_wake_waiters (PpnController *self, PpnVm *vm, const GError *error)
{
	g_autoptr(GPtrArray) waiters = NULL;
	gpointer key = NULL;

	if (!g_hash_table_steal_extended (self->delete_waiters, vm->id, &key, (gpointer *)&waiters))
		return;
	g_free (key);
	for (guint i = 0; i < waiters->len; i++) {
		GTask *task = g_ptr_array_index (waiters, i);
		ppn_controller_answer (self, g_object_ref (task), error != NULL ? "failure" : "success",
				       error != NULL ? g_error_copy (error) : NULL);
	}
}

/* the domain is gone: the record says so, the quota slot and the node's
 * room are free, and whoever waited for it hears */
static void
ppn_controller_gone (PpnController *self, PpnVm *vm)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnVm) keep = ppn_vm_ref (vm);

	if (!ppn_controller_set_state (self, vm, PPN_VM_STATE_DELETED, &error)) {
		g_autoptr(GError) unavailable = g_error_new_literal (
			PPN_ERROR, PPN_ERROR_UNAVAILABLE, _("The VM is destroyed but the fleet cannot record it right now"));
		g_warning ("VM %s is destroyed but the record cannot be updated: %s", vm->id, error->message);
		ppn_controller_wake_waiters (self, vm, unavailable);
		return;
	}
	g_message ("VM %s (%s) of tenant %s is deleted", vm->id, vm->name, vm->tenant);
	ppn_controller_forget (self, vm);
	ppn_controller_wake_waiters (self, vm, NULL);
}

static void
ppn_controller_destroy_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(PpnControllerOp) op = user_data;
	PpnController *self = op->self;
	PpnVm *vm = op->vm;
	g_autoptr(GError) error = NULL;

	vm->busy = FALSE;
	/* a domain the node does not have is as gone as one it destroyed */
	if (ppn_agent_client_destroy_finish (PPN_AGENT_CLIENT (source), res, &error) ||
	    g_error_matches (error, PPN_ERROR, PPN_ERROR_NOT_FOUND)) {
		ppn_controller_gone (self, vm);
		return;
	}
	/* still deleting: the next heartbeat of the node tries again, and a
	 * tenant may retry */
	g_warning ("VM %s: destroy on node %s failed: %s", vm->id, vm->node, error->message);
	{
		g_autoptr(GError) unavailable = g_error_new (PPN_ERROR, PPN_ERROR_UNAVAILABLE,
							     _("Node %s could not destroy the VM yet (%s); it stays"
							       " 'deleting' and is retried"),
							     vm->node, error->message);
		ppn_controller_wake_waiters (self, vm, unavailable);
	}
}

/* ask the VM's node to destroy it; the record is 'deleting' already */
static gboolean
ppn_controller_destroy_start (PpnController *self, PpnVm *vm, GError **error)
{
	PpnNode *node = ppn_nodes_lookup (self->nodes, vm->node);

	if (vm->busy)
		return TRUE;
	if (!ppn_nodes_is_alive (self->nodes, node)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
			     _("Node %s is not reachable right now; the VM stays 'deleting' and is destroyed when the"
			       " node is back"),
			     vm->node);
		return FALSE;
	}
	vm->busy = TRUE;
	ppn_agent_client_destroy_async (self->agents, node->id, node->agent_url, vm->id, NULL,
					ppn_controller_destroy_cb, ppn_controller_op_new (self, vm));
	return TRUE;
}

/* ---- create ------------------------------------------------------------ */

static void
ppn_controller_cleanup_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(PpnVm) vm = user_data;
	g_autoptr(GError) error = NULL;

	if (!ppn_agent_client_destroy_finish (PPN_AGENT_CLIENT (source), res, &error) &&
	    !g_error_matches (error, PPN_ERROR, PPN_ERROR_NOT_FOUND))
		g_warning ("VM %s on node %s: cleaning up after a failed create failed: %s; the node's next"
			   " heartbeat will tell",
			   vm->id, vm->node, error->message);
}

/* ---- answers, each on the record ---------------------------------------- */

static const gchar *
ppn_controller_error_code (const GError *error)
{
	if (error == NULL)
		return NULL;
	return error->domain == PPN_ERROR ? ppn_error_to_string ((PpnError)error->code) : "internal";
}

static void
ppn_controller_answer_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	PpnController *self = g_task_get_source_object (task);
	PpnLifecycle *lc = g_task_get_task_data (task);
	g_autoptr(GError) error = NULL;
	gboolean recorded = ppn_audit_record_finish (PPN_AUDIT (source), res, &lc->receipt, &error);

	if (lc->error != NULL) {
		/* a refusal or a failure stays what it was: nothing was done */
		if (!recorded)
			g_warning ("%s by tenant %s (request %s) answered '%s' without an audit record: %s", lc->op,
				   ppn_tenant_get_name (lc->tenant), lc->request_id, lc->error->message,
				   error->message);
		g_task_return_error (task, g_steal_pointer (&lc->error));
		return;
	}
	if (!recorded && g_strcmp0 (lc->op, "create") == 0) {
		/* what cannot be on the record does not stay running */
		g_warning ("VM %s of tenant %s runs but cannot be recorded in the audit trail: destroying it again",
			   lc->vm->id, lc->vm->tenant);
		if (ppn_controller_set_state (self, lc->vm, PPN_VM_STATE_DELETING, NULL))
			ppn_controller_destroy_start (self, lc->vm, NULL);
		g_task_return_new_error (task, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
					 _("The audit trail cannot be written right now, so the VM was not kept"));
		return;
	}
	if (!recorded) {
		g_task_return_new_error (task, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
					 _("The operation was done but the audit trail cannot record it right now"));
		return;
	}
	if (g_strcmp0 (lc->op, "destroy") == 0)
		g_task_return_boolean (task, TRUE);
	else
		g_task_return_pointer (task, ppn_vm_ref (lc->vm), (GDestroyNotify)ppn_vm_unref);
}

/* The end of every tenant operation: @error (taken; NULL on success) is
 * what the tenant hears, once its audit record is on disk. */
static void
ppn_controller_answer (PpnController *self, GTask *task, const gchar *outcome, GError *error)
{
	PpnLifecycle *lc = g_task_get_task_data (task);
	PpnAuditEvent event = {
		.op = lc->op,
		.outcome = outcome,
		.tenant = ppn_tenant_get_name (lc->tenant),
		.vm_id = lc->vm != NULL ? lc->vm->id : lc->vm_id,
		.vm_name = lc->vm != NULL ? lc->vm->name : (lc->req != NULL ? lc->req->name : NULL),
		.request_id = lc->request_id,
		.error = ppn_controller_error_code (error),
		.detail = lc->detail != NULL ? lc->detail : (error != NULL ? error->message : NULL),
		.node = lc->vm != NULL ? lc->vm->node : NULL,
	};

	g_clear_error (&lc->error);
	lc->error = error;
	ppn_audit_record_async (self->audit, &event, ppn_controller_answer_cb, task);
}

/* the intent goes on the record before anything is done: a trail that
 * cannot be written stops the operation before it starts */
static void
ppn_controller_record_intent (PpnController *self, GTask *task, GAsyncReadyCallback then)
{
	PpnLifecycle *lc = g_task_get_task_data (task);
	PpnAuditEvent event = {
		.op = lc->op,
		.outcome = "requested",
		.tenant = ppn_tenant_get_name (lc->tenant),
		.vm_id = lc->vm_id,
		.vm_name = lc->req != NULL ? lc->req->name : NULL,
		.request_id = lc->request_id,
	};

	ppn_audit_record_async (self->audit, &event, then, task);
}

static gboolean
ppn_controller_intent_finish (GObject *source, GAsyncResult *res, GTask *task)
{
	PpnLifecycle *lc = g_task_get_task_data (task);
	g_autoptr(GError) error = NULL;

	if (ppn_audit_record_finish (PPN_AUDIT (source), res, NULL, &error))
		return TRUE;
	g_warning ("%s by tenant %s (request %s) refused: %s", lc->op, ppn_tenant_get_name (lc->tenant),
		   lc->request_id, error->message);
	g_task_return_error (task, g_steal_pointer (&error));
	g_object_unref (task);
	return FALSE;
}

static guint64
ppn_controller_task_receipt (GAsyncResult *res)
{
	PpnLifecycle *lc = g_task_get_task_data (G_TASK (res));

	return lc->receipt;
}

/* ---- create ------------------------------------------------------------ */

static void
ppn_controller_create_fail (PpnController *self, GTask *task, PpnVm *vm, GError *error)
{
	g_autoptr(GError) store_error = NULL;
	gboolean deleting = vm->state == PPN_VM_STATE_DELETING;
	PpnNode *node = ppn_nodes_lookup (self->nodes, vm->node);

	g_warning ("VM %s of tenant %s: create on node %s failed: %s", vm->id, vm->tenant, vm->node,
		   error->message);
	if (!ppn_controller_set_state (self, vm, deleting ? PPN_VM_STATE_DELETED : PPN_VM_STATE_FAILED,
				       &store_error))
		g_warning ("VM %s: cannot record the failure: %s", vm->id, store_error->message);
	/* The agent may have started the domain before the call failed (a
	 * timeout, a lost connection): ask it to make sure nothing runs. If
	 * it cannot be asked now, the record ('failed'), the node's report
	 * and the domain's own metadata will agree on it later, and the
	 * reconciliation destroys it then. */
	if (ppn_nodes_is_alive (self->nodes, node) && !g_error_matches (error, PPN_ERROR, PPN_ERROR_CONFLICT))
		ppn_agent_client_destroy_async (self->agents, node->id, node->agent_url, vm->id, NULL,
						ppn_controller_cleanup_cb, ppn_vm_ref (vm));
	ppn_controller_forget (self, vm);
	if (deleting)
		ppn_controller_wake_waiters (self, vm, NULL);
	if (error->domain != PPN_ERROR ||
	    (error->code != PPN_ERROR_NO_CAPACITY && error->code != PPN_ERROR_UNAVAILABLE)) {
		error->domain = PPN_ERROR;
		error->code = PPN_ERROR_UNAVAILABLE;
	}
	ppn_controller_answer (self, task, "failure", error);
}

static void
ppn_controller_create_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	GTask *task = user_data;
	PpnController *self = g_task_get_source_object (task);
	PpnLifecycle *lc = g_task_get_task_data (task);
	PpnVm *vm = lc->vm;
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnAgentDomain) domain = ppn_agent_client_create_finish (PPN_AGENT_CLIENT (source), res, &error);

	vm->busy = FALSE;
	if (domain == NULL) {
		/* an agent that did not answer (or answered it cannot) gets no
		 * more creates until it heartbeats again, not until node-timeout */
		if (g_error_matches (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE) || error->domain != PPN_ERROR)
			ppn_nodes_mark_unreachable (ppn_nodes_lookup (self->nodes, vm->node), error);
		ppn_controller_create_fail (self, task, vm, g_steal_pointer (&error));
		return;
	}
	g_ptr_array_unref (vm->forwards);
	vm->forwards = g_steal_pointer (&domain->forwards);
	/* a DELETE came while the domain was being started: it wins */
	if (vm->state == PPN_VM_STATE_DELETING) {
		g_message ("VM %s was deleted while it was being created; destroying it", vm->id);
		ppn_controller_destroy_start (self, vm, NULL);
		ppn_controller_answer (self, task, "failure",
				       g_error_new_literal (PPN_ERROR, PPN_ERROR_CONFLICT,
							    _("The VM was deleted while it was being created")));
		return;
	}
	/* a node that allows no egress makes a "nat" request stricter, never
	 * the other way round */
	if (g_strcmp0 (vm->egress, "none") == 0 && g_strcmp0 (domain->egress, "none") != 0) {
		ppn_controller_create_fail (self, task, vm,
					    g_error_new (PPN_ERROR, PPN_ERROR_UNAVAILABLE,
							 _("Node %s did not apply egress policy 'none'"), vm->node));
		return;
	}
	g_free (vm->egress);
	vm->egress = g_steal_pointer (&domain->egress);
	if (!ppn_controller_set_state (self, vm, PPN_VM_STATE_RUNNING, &error)) {
		ppn_controller_create_fail (self, task, vm, g_steal_pointer (&error));
		return;
	}
	g_message ("VM %s (%s) of tenant %s is running on node %s", vm->id, vm->name, vm->tenant, vm->node);
	ppn_controller_answer (self, task, "success", NULL);
}

/* a refusal at the gate: on the record like everything else */
static void
ppn_controller_create_refuse (PpnController *self, GTask *task, GError *error)
{
	gboolean denied = g_error_matches (error, PPN_ERROR, PPN_ERROR_QUOTA_EXCEEDED);

	ppn_controller_answer (self, task, denied ? "denied" : "failure", error);
}

static void
ppn_controller_create_gate_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	GTask *task = user_data;
	PpnController *self;
	PpnLifecycle *lc;
	const PpnVmRequest *req;
	const gchar *owner;
	guint used, max_vms;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *id = NULL;
	g_autoptr(PpnVm) vm = NULL;
	PpnNode *node;

	if (!ppn_controller_intent_finish (source, res, task))
		return;
	self = g_task_get_source_object (task);
	lc = g_task_get_task_data (task);
	req = lc->req;
	owner = ppn_tenant_get_name (lc->tenant);
	max_vms = ppn_tenant_get_max_vms (lc->tenant);

	/* The gate. Check and reserve happen in this one main-loop dispatch
	 * with no I/O in between but the store write, so two creates of the
	 * same tenant cannot both see the last free slot. The pending record
	 * is the reservation; it counts until the VM is gone. */
	used = ppn_registry_count_tenant (self->registry, owner);
	if (used >= max_vms) {
		ppn_controller_create_refuse (self, task,
					      g_error_new (PPN_ERROR, PPN_ERROR_QUOTA_EXCEEDED,
							   _("Quota exceeded: at most %u VMs are allowed and %u are"
							     " in use"),
							   max_vms, used));
		return;
	}
	if (ppn_registry_find_by_name (self->registry, owner, req->name) != NULL) {
		ppn_controller_create_refuse (self, task,
					      g_error_new (PPN_ERROR, PPN_ERROR_CONFLICT,
							   _("A VM named '%s' already exists"), req->name));
		return;
	}
	if (!ppn_nodes_has_image (self->nodes, req->image)) {
		ppn_controller_create_refuse (
			self, task,
			g_error_new (PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'image': no image '%s' in the catalog (GET /v1/images lists them)"),
				     req->image));
		return;
	}
	{
		PpnPlacementNeeds needs = {req->image, req->vcpus, req->memory_mib, req->forwards->len, req->accel};
		gint64 start = g_get_monotonic_time ();
		node = ppn_nodes_place (self->nodes, &needs, &error);
		ppn_histogram_observe (&self->place_seconds, (g_get_monotonic_time () - start) / 1e6);
	}
	if (node == NULL) {
		ppn_controller_create_refuse (self, task, g_steal_pointer (&error));
		return;
	}
	do {
		g_free (id);
		id = ppn_vm_id_new ();
	} while (ppn_registry_lookup (self->registry, id) != NULL);

	vm = ppn_vm_new (id, owner, req, g_get_real_time ());
	vm->node = g_strdup (node->id);
	/* recorded before anything reaches a node */
	if (!ppn_store_insert_vm (self->store, vm, &error)) {
		g_warning ("cannot record a new VM: %s", error->message);
		ppn_controller_create_refuse (self, task,
					      g_error_new_literal (PPN_ERROR, PPN_ERROR_UNAVAILABLE,
								   _("The fleet cannot record new VMs right now")));
		return;
	}
	ppn_registry_add (self->registry, vm);
	ppn_nodes_reserve (node, vm->id, vm->vcpus, vm->memory_mib, vm->forwards->len);
	lc->vm = ppn_vm_ref (vm);

	/* the create goes on if the tenant hangs up: the VM is theirs and
	 * shows in the listing; so no cancellable here */
	vm->busy = TRUE;
	ppn_agent_client_create_async (self->agents, node->id, node->agent_url, vm, NULL, ppn_controller_create_cb,
				       task);
}

void
ppn_controller_create_vm_async (PpnController *self,
				PpnTenant *tenant,
				PpnVmRequest *req,
				const gchar *request_id,
				GAsyncReadyCallback callback,
				gpointer user_data)
{
	GTask *task;

	g_return_if_fail (PPN_IS_CONTROLLER (self));
	task = ppn_lifecycle_task_new (self, "create", tenant, NULL, request_id, ppn_controller_create_vm_async,
				       callback, user_data);
	((PpnLifecycle *)g_task_get_task_data (task))->req = req;
	ppn_controller_record_intent (self, task, ppn_controller_create_gate_cb);
}

PpnVm *
ppn_controller_create_vm_finish (PpnController *self, GAsyncResult *res, guint64 *receipt, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (res, self), NULL);
	if (receipt != NULL)
		*receipt = ppn_controller_task_receipt (res);
	return g_task_propagate_pointer (G_TASK (res), error);
}

/* ---- delete ------------------------------------------------------------ */

/* another tenant's VM and a missing one: the same answer and, in the
 * ledger the tenant can read, the same record */
static gboolean
ppn_controller_owned_or_answer (PpnController *self, GTask *task)
{
	PpnLifecycle *lc = g_task_get_task_data (task);
	g_autoptr(GError) error = NULL;
	PpnVm *vm;

	g_clear_pointer (&lc->detail, g_free);
	vm = ppn_controller_lookup_owned_why (self, lc->tenant, lc->asked_id, &lc->detail, &error);
	if (vm == NULL) {
		ppn_controller_answer (self, task, "denied", g_steal_pointer (&error));
		return FALSE;
	}
	g_clear_pointer (&lc->vm, ppn_vm_unref);
	lc->vm = ppn_vm_ref (vm);
	return TRUE;
}

static void
ppn_controller_delete_start_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	GTask *task = user_data;
	PpnController *self;
	PpnLifecycle *lc;
	g_autoptr(GError) error = NULL;
	PpnVm *vm;

	if (!ppn_controller_intent_finish (source, res, task))
		return;
	self = g_task_get_source_object (task);
	lc = g_task_get_task_data (task);
	/* it may have gone while the intent was written */
	if (!ppn_controller_owned_or_answer (self, task))
		return;
	vm = lc->vm;
	/* recorded first: whatever happens next, a restart finds 'deleting'
	 * and finishes the job */
	if (vm->state != PPN_VM_STATE_DELETING &&
	    !ppn_controller_set_state (self, vm, PPN_VM_STATE_DELETING, &error)) {
		g_warning ("VM %s: %s", vm->id, error->message);
		ppn_controller_answer (self, task, "failure",
				       g_error_new_literal (PPN_ERROR, PPN_ERROR_UNAVAILABLE,
							    _("The fleet cannot record changes right now")));
		return;
	}
	/* during a create (or another destroy) this DELETE waits for it; the
	 * create's answer destroys the domain */
	if (!vm->busy && !ppn_controller_destroy_start (self, vm, &error)) {
		ppn_controller_answer (self, task, "failure", g_steal_pointer (&error));
		return;
	}
	ppn_controller_add_waiter (self, vm, task);
}

void
ppn_controller_delete_vm_async (PpnController *self,
				PpnTenant *tenant,
				const gchar *id,
				const gchar *request_id,
				GAsyncReadyCallback callback,
				gpointer user_data)
{
	GTask *task;

	g_return_if_fail (PPN_IS_CONTROLLER (self));
	task = ppn_lifecycle_task_new (self, "destroy", tenant, id, request_id, ppn_controller_delete_vm_async,
				       callback, user_data);
	if (ppn_controller_owned_or_answer (self, task))
		ppn_controller_record_intent (self, task, ppn_controller_delete_start_cb);
}

gboolean
ppn_controller_delete_vm_finish (PpnController *self, GAsyncResult *res, guint64 *receipt, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (res, self), FALSE);
	if (receipt != NULL)
		*receipt = ppn_controller_task_receipt (res);
	return g_task_propagate_boolean (G_TASK (res), error);
}

/* ---- show -------------------------------------------------------------- */

/* a VM of the tenant's own is answered at once; asking for one that is
 * not (missing, or someone else's) is a denied attempt, on the record */
void
ppn_controller_show_vm_async (PpnController *self,
			      PpnTenant *tenant,
			      const gchar *id,
			      const gchar *request_id,
			      GAsyncReadyCallback callback,
			      gpointer user_data)
{
	GTask *task;

	g_return_if_fail (PPN_IS_CONTROLLER (self));
	task = ppn_lifecycle_task_new (self, "show", tenant, id, request_id, ppn_controller_show_vm_async, callback,
				       user_data);
	if (!ppn_controller_owned_or_answer (self, task))
		return;
	g_task_return_pointer (task, ppn_vm_ref (((PpnLifecycle *)g_task_get_task_data (task))->vm),
			       (GDestroyNotify)ppn_vm_unref);
	g_object_unref (task);
}

PpnVm *
ppn_controller_show_vm_finish (PpnController *self, GAsyncResult *res, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (res, self), NULL);
	return g_task_propagate_pointer (G_TASK (res), error);
}

/* ---- reads ------------------------------------------------------------- */

/* page tokens are base64url of "created_at:id"; they only ever position a
 * cursor inside the caller's own list */
static gchar *
ppn_controller_encode_page_token (const PpnVm *vm)
{
	g_autofree gchar *raw = g_strdup_printf ("%" G_GINT64_FORMAT ":%s", vm->created_at, vm->id);
	gchar *b64 = g_base64_encode ((const guchar *)raw, strlen (raw));

	g_strdelimit (b64, "+", '-');
	g_strdelimit (b64, "/", '_');
	g_strdelimit (b64, "=", '.');
	return b64;
}

static gboolean
ppn_controller_decode_page_token (const gchar *token, gint64 *created, gchar **id, GError **error)
{
	g_autofree gchar *b64 = NULL;
	g_autofree guchar *raw = NULL;
	g_autofree gchar *str = NULL;
	g_autofree gchar *num = NULL;
	gsize len = 0;
	const gchar *colon = NULL;

	if (strlen (token) <= 128 && strspn (token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
						    "0123456789-_.") == strlen (token)) {
		b64 = g_strdup (token);
		g_strdelimit (b64, "-", '+');
		g_strdelimit (b64, "_", '/');
		g_strdelimit (b64, ".", '=');
		raw = g_base64_decode (b64, &len);
		str = g_strndup ((const gchar *)raw, len);
		colon = strchr (str, ':');
	}
	if (colon != NULL)
		num = g_strndup (str, colon - str);
	if (colon == NULL || !ppn_vm_id_validate (colon + 1, NULL) ||
	    !g_ascii_string_to_signed (num, 10, 0, G_MAXINT64, created, NULL)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Parameter 'page_token' is not a token this API gave out"));
		return FALSE;
	}
	*id = g_strdup (colon + 1);
	return TRUE;
}

GPtrArray *
ppn_controller_list_vms (PpnController *self,
			 PpnTenant *tenant,
			 guint limit,
			 const gchar *page_token,
			 gchar **next_page_token,
			 GError **error)
{
	gint64 after_created = 0;
	g_autofree gchar *after_id = NULL;
	gboolean more = FALSE;
	g_autoptr(GPtrArray) page = NULL;

	g_return_val_if_fail (PPN_IS_CONTROLLER (self), NULL);
	if (page_token != NULL && !ppn_controller_decode_page_token (page_token, &after_created, &after_id, error))
		return NULL;
	page = ppn_registry_list_page (self->registry, ppn_tenant_get_name (tenant), after_created, after_id, limit,
				       &more);
	*next_page_token = (more && page->len > 0)
				   ? ppn_controller_encode_page_token (g_ptr_array_index (page, page->len - 1))
				   : NULL;
	return g_steal_pointer (&page);
}

guint
ppn_controller_get_usage (PpnController *self, PpnTenant *tenant)
{
	g_return_val_if_fail (PPN_IS_CONTROLLER (self), 0);
	return ppn_registry_count_tenant (self->registry, ppn_tenant_get_name (tenant));
}

JsonNode *
ppn_controller_get_images (PpnController *self)
{
	g_return_val_if_fail (PPN_IS_CONTROLLER (self), NULL);
	return ppn_nodes_images_to_json (self->nodes);
}

/* the operators' view of the nodes (GET /mesh/v1/nodes) */
JsonNode *
ppn_controller_get_nodes (PpnController *self)
{
	g_return_val_if_fail (PPN_IS_CONTROLLER (self), NULL);
	return ppn_nodes_to_json (self->nodes);
}

void
ppn_controller_collect_metrics (GString *out, gpointer controller)
{
	PpnController *self = PPN_CONTROLLER (controller);
	g_autoptr(GList) vms = ppn_registry_get_all (self->registry);
	guint by_state[PPN_VM_STATE_LAST] = {0};
	guint waiting = 0;
	GHashTableIter iter;
	GPtrArray *waiters;

	for (GList *l = vms; l != NULL; l = l->next) {
		PpnVm *vm = l->data;
		if ((guint)vm->state < G_N_ELEMENTS (by_state))
			by_state[vm->state]++;
	}
	ppn_metrics_family (out, "ppn_vms", "gauge", "VM records in the registry, by state.");
	for (guint i = 0; i < G_N_ELEMENTS (by_state); i++) {
		if (i == PPN_VM_STATE_DELETED || i == PPN_VM_STATE_FAILED)
			continue; /* they leave the registry */
		g_string_append_printf (out, "ppn_vms{state=\"%s\"} %u\n", ppn_vm_state_to_string ((PpnVmState)i),
					by_state[i]);
	}
	g_hash_table_iter_init (&iter, self->delete_waiters);
	while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&waiters))
		waiting += waiters->len;
	ppn_metrics_family (out, "ppn_deletes_waiting", "gauge", "DELETEs waiting for a create or destroy to finish.");
	g_string_append_printf (out, "ppn_deletes_waiting %u\n", waiting);
	ppn_nodes_collect_metrics (self->nodes, out);
	ppn_metrics_family (out, "ppn_placement_duration_seconds", "histogram", "Choosing a node for a create.");
	ppn_histogram_render (out, "ppn_placement_duration_seconds", "", &self->place_seconds);
	ppn_metrics_family (out, "ppn_heartbeat_processing_seconds", "histogram",
			    "Checking and reconciling one heartbeat on the main loop (after its body is parsed).");
	ppn_histogram_render (out, "ppn_heartbeat_processing_seconds", "", &self->heartbeat_seconds);
}

void
ppn_controller_set_placement (PpnController *self, PpnPlacement strategy)
{
	g_return_if_fail (PPN_IS_CONTROLLER (self));
	ppn_nodes_set_placement (self->nodes, strategy);
}

/* ---- mesh -------------------------------------------------------------- */

/* What a node says about its domains is checked against the records, and
 * the records win: a node that claims another tenant for a known VM, or a
 * VM placed on another node, is not believed about anything, and its
 * heartbeat is refused (so it does not count as alive either). */
static gboolean
ppn_controller_check_domains (PpnController *self, const gchar *node_id, JsonArray *domains, GError **error)
{
	for (guint i = 0; i < json_array_get_length (domains); i++) {
		JsonNode *el = json_array_get_element (domains, i);
		JsonObject *obj;
		const gchar *vm_id = NULL, *tenant = NULL;
		PpnVm *vm;

		if (!JSON_NODE_HOLDS_OBJECT (el)) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'domains[%u]' must be an object"), i);
			return FALSE;
		}
		obj = json_node_get_object (el);
		if (!ppn_json_get_string (obj, "vm_id", TRUE, &vm_id, error) ||
		    !ppn_vm_id_validate (vm_id, error) ||
		    !ppn_json_get_string (obj, "tenant", TRUE, &tenant, error) ||
		    !ppn_name_validate ("domains[].tenant", tenant, error)) {
			g_prefix_error (error, "domains[%u]: ", i);
			return FALSE;
		}
		vm = ppn_registry_lookup (self->registry, vm_id);
		if (vm == NULL) {
			g_debug ("node %s runs a domain for VM %s with no live record", node_id, vm_id);
			continue;
		}
		if (g_strcmp0 (vm->tenant, tenant) != 0) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_FORBIDDEN,
				     _("Node %s reports VM %s for tenant %s, but it belongs to %s"), node_id,
				     vm_id, tenant, vm->tenant);
			return FALSE;
		}
		if (g_strcmp0 (vm->node, node_id) != 0) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_FORBIDDEN,
				     _("Node %s reports VM %s, which is placed on node %s"), node_id, vm_id,
				     vm->node != NULL ? vm->node : "-");
			return FALSE;
		}
	}
	return TRUE;
}

/* ---- reconciliation ----------------------------------------------------- */

/*
 * The rules (docs/reconciliation.md has them with the reasons):
 *
 *  - a reported domain whose record is pending (no create in flight: the
 *    fleet restarted), unknown or lost is running again;
 *  - a reported domain whose record is 'deleting' is destroyed (again);
 *  - a reported domain whose record is 'failed' or 'deleted', on the node
 *    the record names, for the tenant the record names, is destroyed:
 *    record, report and the domain's own metadata agree it must not run;
 *  - a reported domain with no record at all is adopted as 'running' for
 *    the tenant its metadata names (a missing record alone never destroys
 *    anything: the database may have been restored from a backup);
 *  - a record whose domain its live, healthy node does not report is
 *    'lost' after lost-grace (pending: 'failed'; deleting: gone);
 *  - the VMs of a node that went silent are 'unknown' after node-timeout,
 *    and come back with the node;
 *  - a node whose libvirt is unreachable is believed about nothing: its
 *    empty list proves no domain gone.
 */

static void
ppn_controller_mark (PpnController *self, PpnVm *vm, PpnVmState state, const gchar *why)
{
	g_autoptr(GError) error = NULL;
	PpnVmState old = vm->state;

	if (old == state)
		return;
	if (!ppn_controller_set_state (self, vm, state, &error)) {
		g_warning ("VM %s: cannot record state %s: %s", vm->id, ppn_vm_state_to_string (state), error->message);
		return;
	}
	g_message ("VM %s of tenant %s on node %s: %s -> %s (%s)", vm->id, vm->tenant, vm->node,
		   ppn_vm_state_to_string (old), ppn_vm_state_to_string (state), why);
}

/* what the fleet does to a tenant's VM by itself goes on the record too;
 * nobody waits for it */
static void
ppn_controller_audit_fleet (PpnController *self, const gchar *op, PpnVm *vm, const gchar *node, const gchar *detail)
{
	PpnAuditEvent event = {
		.op = op,
		.outcome = "success",
		.actor = "fleet",
		.tenant = vm->tenant,
		.vm_id = vm->id,
		.vm_name = vm->name,
		.detail = detail,
		.node = node,
	};

	ppn_audit_record_async (self->audit, &event, NULL, NULL);
}

static void
ppn_controller_adopt (PpnController *self, const gchar *node_id, JsonObject *dom)
{
	const gchar *vm_id = json_object_get_string_member (dom, "vm_id");
	const gchar *tenant = json_object_get_string_member (dom, "tenant");
	const gchar *name = json_object_get_string_member_with_default (dom, "name", NULL);
	const gchar *image = json_object_get_string_member_with_default (dom, "image", NULL);
	const gchar *egress = json_object_get_string_member_with_default (dom, "egress", "nat");
	JsonArray *fwd = NULL;
	g_autoptr(PpnVm) vm = ppn_vm_new (vm_id, tenant, NULL, g_get_real_time ());
	g_autoptr(GError) error = NULL;
	g_autofree gchar *fallback_name = g_strdup_printf ("adopted-%s", vm_id);
	PpnNode *node = ppn_nodes_lookup (self->nodes, node_id);

	vm->name = g_strdup (name != NULL && ppn_name_validate ("name", name, NULL) &&
					     ppn_registry_find_by_name (self->registry, tenant, name) == NULL
				     ? name
				     : fallback_name);
	vm->image = g_strdup (image != NULL && ppn_name_validate ("image", image, NULL) ? image : "unknown");
	vm->vcpus = (guint)CLAMP (json_object_get_int_member_with_default (dom, "vcpus", 1), 1, 1024);
	vm->memory_mib = (guint)CLAMP (json_object_get_int_member_with_default (dom, "memory_mib", 0), 0, G_MAXINT32);
	g_free (vm->egress);
	vm->egress = g_strdup (g_strcmp0 (egress, "none") == 0 ? "none" : "nat");
	vm->node = g_strdup (node_id);
	vm->state = PPN_VM_STATE_RUNNING;
	if (ppn_json_get_array (dom, "port_forwards", FALSE, &fwd, NULL) && fwd != NULL) {
		g_autoptr(GPtrArray) forwards = ppn_forwards_from_json (fwd, 1024, TRUE, NULL);
		if (forwards != NULL) {
			g_ptr_array_unref (vm->forwards);
			vm->forwards = g_steal_pointer (&forwards);
		}
	}
	if (!ppn_store_insert_vm (self->store, vm, &error)) {
		g_warning ("node %s runs VM %s with no record; cannot adopt it: %s", node_id, vm_id, error->message);
		return;
	}
	ppn_registry_add (self->registry, vm);
	if (node != NULL)
		ppn_nodes_reserve (node, vm->id, vm->vcpus, vm->memory_mib, vm->forwards->len);
	g_warning ("node %s runs VM %s with no record: adopted for tenant %s (from its metadata)", node_id, vm_id,
		   tenant);
	ppn_controller_audit_fleet (self, "adopt", vm, node_id, "a running domain with no record, owner from its metadata");
}

/* a domain nobody should run: destroyed only when record, report and
 * metadata agree */
static void
ppn_controller_reap (PpnController *self, const gchar *node_id, JsonObject *dom, PpnVm *record)
{
	PpnNode *node = ppn_nodes_lookup (self->nodes, node_id);
	const gchar *tenant = json_object_get_string_member (dom, "tenant");

	if (g_strcmp0 (record->node, node_id) != 0 || g_strcmp0 (record->tenant, tenant) != 0) {
		g_warning ("node %s runs VM %s (tenant %s) whose record (%s, tenant %s on node %s) disagrees;"
			   " left alone",
			   node_id, record->id, tenant, ppn_vm_state_to_string (record->state), record->tenant,
			   record->node);
		return;
	}
	g_warning ("node %s still runs VM %s of tenant %s, recorded as %s: destroying it", node_id, record->id,
		   tenant, ppn_vm_state_to_string (record->state));
	ppn_controller_audit_fleet (self, "reap", record, node_id, "a domain whose record says it must not run");
	ppn_agent_client_destroy_async (self->agents, node->id, node->agent_url, record->id, NULL,
					ppn_controller_cleanup_cb, ppn_vm_ref (record));
}

static void
ppn_controller_reconcile (PpnController *self, const gchar *node_id, JsonArray *domains)
{
	g_autoptr(GHashTable) reported = g_hash_table_new (g_str_hash, g_str_equal);
	g_autoptr(GPtrArray) placed = NULL;
	gint64 now = g_get_monotonic_time ();

	for (guint i = 0; i < json_array_get_length (domains); i++) {
		JsonObject *dom = json_array_get_object_element (domains, i);
		const gchar *vm_id = json_object_get_string_member (dom, "vm_id");
		PpnVm *vm = ppn_registry_lookup (self->registry, vm_id);

		g_hash_table_add (reported, (gpointer)vm_id);
		if (vm == NULL) {
			g_autoptr(GError) error = NULL;
			g_autoptr(PpnVm) record = ppn_store_get_vm (self->store, vm_id, &error);
			if (record != NULL)
				ppn_controller_reap (self, node_id, dom, record);
			else if (error == NULL)
				ppn_controller_adopt (self, node_id, dom);
			else
				g_warning ("VM %s: cannot read its record: %s", vm_id, error->message);
			continue;
		}
		vm->missing_since = 0;
		if (vm->busy)
			continue;
		switch (vm->state) {
		case PPN_VM_STATE_PENDING:
		case PPN_VM_STATE_UNKNOWN:
		case PPN_VM_STATE_LOST: {
			JsonArray *fwd = NULL;
			if (vm->state == PPN_VM_STATE_PENDING && ppn_json_get_array (dom, "port_forwards", FALSE, &fwd, NULL) &&
			    fwd != NULL) {
				g_autoptr(GPtrArray) forwards = ppn_forwards_from_json (fwd, 1024, TRUE, NULL);
				if (forwards != NULL) {
					g_ptr_array_unref (vm->forwards);
					vm->forwards = g_steal_pointer (&forwards);
				}
			}
			ppn_controller_mark (self, vm, PPN_VM_STATE_RUNNING, "its node reports it");
			break;
		}
		case PPN_VM_STATE_DELETING:
			ppn_controller_destroy_start (self, vm, NULL);
			break;
		default:
			break;
		}
	}

	placed = ppn_registry_node_vms (self->registry, node_id);
	for (guint i = 0; i < placed->len; i++) {
		PpnVm *vm = g_ptr_array_index (placed, i);
		if (vm->busy || g_hash_table_contains (reported, vm->id))
			continue;
		if (vm->state == PPN_VM_STATE_DELETING) {
			/* asked to go, and gone */
			ppn_controller_gone (self, vm);
			continue;
		}
		if (vm->state == PPN_VM_STATE_LOST)
			continue;
		if (vm->missing_since == 0) {
			vm->missing_since = now;
			continue;
		}
		if (now - vm->missing_since < self->lost_grace)
			continue;
		if (vm->state == PPN_VM_STATE_PENDING) {
			ppn_controller_mark (self, vm, PPN_VM_STATE_FAILED, "its node never started it");
			ppn_controller_forget (self, vm);
		} else {
			ppn_controller_mark (self, vm, PPN_VM_STATE_LOST, "its node no longer runs it");
			ppn_controller_audit_fleet (self, "lost", vm, node_id, "its node no longer reports it");
			/* nothing runs: the node's room is free, the quota slot is not */
			ppn_nodes_release (ppn_nodes_ensure (self->nodes, node_id), vm->id);
		}
	}
}

/* a node silent for node-timeout: its VMs may well run, nobody can say.
 * Once a second, so it looks at the nodes that hold VMs and only at the
 * VMs of those that went silent: never at every VM of the fleet. The
 * marks of one tick share one transaction, and one tick marks at most
 * PPN_CONTROLLER_MARK_BUDGET VMs: when a thousand nodes fall silent at
 * once (a fleet restarted without them, a network split) the main loop
 * goes on serving between ticks instead of writing 100,000 records, one
 * synchronous commit each, in a single dispatch. */
#define PPN_CONTROLLER_MARK_BUDGET 2000

static gboolean
ppn_controller_tick_cb (gpointer user_data)
{
	PpnController *self = PPN_CONTROLLER (user_data);
	gint64 now = g_get_monotonic_time ();
	g_autoptr(GList) node_ids = ppn_registry_get_node_ids (self->registry);
	g_autoptr(GError) error = NULL;
	gboolean in_transaction = FALSE;
	guint marked = 0;

	for (GList *l = node_ids; l != NULL && marked < PPN_CONTROLLER_MARK_BUDGET; l = l->next) {
		PpnNode *node = ppn_nodes_lookup (self->nodes, l->data);
		g_autoptr(GPtrArray) vms = NULL;
		gboolean seen = FALSE, done = TRUE;
		gint64 heard;

		if (node == NULL || node->silent_marked)
			continue;
		heard = MAX (node->last_seen, self->started);
		if (now - heard < self->node_timeout)
			continue;
		if (!in_transaction) {
			if (!ppn_store_begin (self->store, &error)) {
				g_warning ("cannot mark silent nodes' VMs now: %s", error->message);
				return G_SOURCE_CONTINUE;
			}
			in_transaction = TRUE;
		}
		vms = ppn_registry_node_vms (self->registry, node->id);
		for (guint i = 0; i < vms->len; i++) {
			PpnVm *vm = g_ptr_array_index (vms, i);
			if (vm->busy)
				continue;
			seen = TRUE;
			if (vm->state != PPN_VM_STATE_RUNNING && vm->state != PPN_VM_STATE_PENDING)
				continue;
			if (marked == PPN_CONTROLLER_MARK_BUDGET) {
				done = FALSE; /* the rest on the next tick */
				break;
			}
			ppn_controller_mark (self, vm, PPN_VM_STATE_UNKNOWN, "its node is silent");
			marked++;
		}
		/* a node whose VMs are all busy is looked at again next time */
		if (seen && done) {
			g_warning ("node %s is silent: its VMs are unknown until it is back", node->id);
			node->silent_marked = TRUE;
		}
	}
	/* a failed commit leaves the records as they were and the VMs
	 * 'unknown' in memory only: 'unknown' is what a restart computes
	 * for them again */
	if (in_transaction && !ppn_store_commit (self->store, &error))
		g_warning ("cannot record the silent nodes' VMs as unknown: %s", error->message);
	return G_SOURCE_CONTINUE;
}

/* @node_id is the caller's certificate's, never a field of @hb */
gboolean
ppn_controller_heartbeat (PpnController *self, const gchar *node_id, JsonObject *hb, GError **error)
{
	JsonArray *domains = NULL;
	PpnNode *node;
	gint64 start = g_get_monotonic_time ();

	g_return_val_if_fail (PPN_IS_CONTROLLER (self), FALSE);
	if (!ppn_json_get_array (hb, "domains", TRUE, &domains, error) ||
	    !ppn_controller_check_domains (self, node_id, domains, error) ||
	    !ppn_nodes_heartbeat (self->nodes, node_id, hb, error))
		return FALSE;
	node = ppn_nodes_lookup (self->nodes, node_id);
	if (!node->degraded)
		ppn_controller_reconcile (self, node_id, domains);
	ppn_histogram_observe (&self->heartbeat_seconds, (g_get_monotonic_time () - start) / 1e6);
	return TRUE;
}

static void
ppn_controller_dispose (GObject *object)
{
	PpnController *self = PPN_CONTROLLER (object);

	if (self->tick_id != 0) {
		g_source_remove (self->tick_id);
		self->tick_id = 0;
	}
	G_OBJECT_CLASS (ppn_controller_parent_class)->dispose (object);
}

static void
ppn_controller_finalize (GObject *object)
{
	PpnController *self = PPN_CONTROLLER (object);

	g_clear_object (&self->store);
	g_clear_object (&self->agents);
	g_clear_object (&self->audit);
	g_clear_pointer (&self->registry, ppn_registry_free);
	g_clear_pointer (&self->nodes, ppn_nodes_free);
	g_clear_pointer (&self->delete_waiters, g_hash_table_unref);
	G_OBJECT_CLASS (ppn_controller_parent_class)->finalize (object);
}

static void
ppn_controller_class_init (PpnControllerClass *klass)
{
	G_OBJECT_CLASS (klass)->dispose = ppn_controller_dispose;
	G_OBJECT_CLASS (klass)->finalize = ppn_controller_finalize;
}

static void
ppn_controller_init (PpnController *self)
{
	self->registry = ppn_registry_new ();
	self->delete_waiters = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
						      (GDestroyNotify)g_ptr_array_unref);
	self->started = g_get_monotonic_time ();
}

PpnController *
ppn_controller_new (PpnStore *store, PpnAgentClient *agents, PpnAudit *audit, guint node_timeout, guint lost_grace)
{
	PpnController *self = g_object_new (PPN_TYPE_CONTROLLER, NULL);

	self->store = g_object_ref (store);
	self->agents = g_object_ref (agents);
	self->audit = g_object_ref (audit);
	self->nodes = ppn_nodes_new (node_timeout);
	self->node_timeout = (gint64)node_timeout * G_USEC_PER_SEC;
	self->lost_grace = (gint64)lost_grace * G_USEC_PER_SEC;
	self->tick_id = g_timeout_add_seconds (1, ppn_controller_tick_cb, self);
	return self;
}
