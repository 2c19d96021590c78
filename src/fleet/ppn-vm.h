#pragma once

#include <json-glib/json-glib.h>

#include "ppn-forward.h"

G_BEGIN_DECLS

typedef enum {
	PPN_VM_STATE_PENDING,	/* recorded, reserved, not yet running */
	PPN_VM_STATE_RUNNING,
	PPN_VM_STATE_DELETING,
	PPN_VM_STATE_DELETED,
	PPN_VM_STATE_FAILED,
	PPN_VM_STATE_LOST,	/* its live node does not run it any more */
	PPN_VM_STATE_UNKNOWN,	/* its node went silent; it may well still run */
	PPN_VM_STATE_LAST
} PpnVmState;

const gchar *ppn_vm_state_to_string (PpnVmState state);
gboolean ppn_vm_state_from_string (const gchar *str, PpnVmState *state);
gboolean ppn_vm_egress_validate (const gchar *egress, GError **error);
gboolean ppn_vm_accel_validate (const gchar *accel, GError **error);

/* what a tenant asks for, validated */
typedef struct {
	gchar *name;
	gchar *image;
	guint vcpus;
	guint memory_mib;
	GPtrArray *forwards; /* of PpnForward, no host side */
	gchar *egress;	     /* "nat" or "none" */
	gchar *accel;	     /* required of the node: "kvm", "tcg", or NULL for either */
} PpnVmRequest;

typedef struct {
	guint max_vcpus;
	guint max_memory_mib;
	guint max_forwards;
} PpnVmLimits;

PpnVmRequest *ppn_vm_request_from_json (JsonObject *obj, const PpnVmLimits *limits, GError **error);
void ppn_vm_request_free (PpnVmRequest *req);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnVmRequest, ppn_vm_request_free)

/* a VM record: the same fields in memory and in the store */
typedef struct {
	gint refcount;
	gchar *id;
	gchar *tenant;
	gchar *name;
	gchar *image;
	guint vcpus;
	guint memory_mib;
	PpnVmState state;
	gchar *egress;	      /* "nat" or "none": what the guest may reach */
	gchar *node;	      /* NULL until placed */
	GPtrArray *forwards;  /* of PpnForward; host side set once running */
	gint64 created_at;    /* unix usec */
	gint64 updated_at;    /* unix usec */

	/* this process's view only, never stored */
	gboolean busy;	       /* a create or destroy call is in flight */
	gint64 missing_since;  /* monotonic usec its node first did not report it, 0 */
} PpnVm;

PpnVm *ppn_vm_new (const gchar *id, const gchar *tenant, const PpnVmRequest *req, gint64 now);
PpnVm *ppn_vm_ref (PpnVm *vm);
void ppn_vm_unref (PpnVm *vm);
JsonNode *ppn_vm_to_json (const PpnVm *vm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnVm, ppn_vm_unref)

G_END_DECLS
