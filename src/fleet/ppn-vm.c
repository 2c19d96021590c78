#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppn-vm.h"

static const gchar *const ppn_vm_state_names[PPN_VM_STATE_LAST] = {
	[PPN_VM_STATE_PENDING] = "pending",
	[PPN_VM_STATE_RUNNING] = "running",
	[PPN_VM_STATE_DELETING] = "deleting",
	[PPN_VM_STATE_DELETED] = "deleted",
	[PPN_VM_STATE_FAILED] = "failed",
	[PPN_VM_STATE_LOST] = "lost",
	[PPN_VM_STATE_UNKNOWN] = "unknown",
};

const gchar *
ppn_vm_state_to_string (PpnVmState state)
{
	if ((guint)state >= PPN_VM_STATE_LAST)
		return "unknown";
	return ppn_vm_state_names[state];
}

gboolean
ppn_vm_state_from_string (const gchar *str, PpnVmState *state)
{
	for (guint i = 0; i < PPN_VM_STATE_LAST; i++) {
		if (g_strcmp0 (str, ppn_vm_state_names[i]) == 0) {
			*state = (PpnVmState)i;
			return TRUE;
		}
	}
	return FALSE;
}

/* nat: the guest reaches out through the node (SLIRP's default, the
 * node's own loopback included, as 10.0.2.2); none: it reaches nothing,
 * and only its forwarded ports reach it */
gboolean
ppn_vm_egress_validate (const gchar *egress, GError **error)
{
	if (g_strcmp0 (egress, "nat") != 0 && g_strcmp0 (egress, "none") != 0) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'egress' must be \"nat\" or \"none\""));
		return FALSE;
	}
	return TRUE;
}

/* the accelerator a node runs guests with, and a VM may require */
gboolean
ppn_vm_accel_validate (const gchar *accel, GError **error)
{
	if (g_strcmp0 (accel, "kvm") != 0 && g_strcmp0 (accel, "tcg") != 0) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'accel' must be \"kvm\" or \"tcg\""));
		return FALSE;
	}
	return TRUE;
}

void
ppn_vm_request_free (PpnVmRequest *req)
{
	if (req == NULL)
		return;
	g_free (req->egress);
	g_free (req->accel);
	g_free (req->name);
	g_free (req->image);
	g_clear_pointer (&req->forwards, g_ptr_array_unref);
	g_free (req);
}

/* the whole schema of POST /v1/vms; nothing in it can name a tenant */
PpnVmRequest *
ppn_vm_request_from_json (JsonObject *obj, const PpnVmLimits *limits, GError **error)
{
	static const gchar *const fields[] = {"name",	       "image",	 "vcpus", "memory_mib",
					      "port_forwards", "egress", "accel", NULL};
	g_autoptr(PpnVmRequest) req = g_new0 (PpnVmRequest, 1);
	const gchar *name = NULL, *image = NULL, *egress = NULL, *accel = NULL;
	gint64 vcpus = 1, memory_mib = 256;
	JsonArray *forwards = NULL;

	g_return_val_if_fail (obj != NULL && limits != NULL, NULL);
	if (!ppn_json_check_members (obj, NULL, fields, error) ||
	    !ppn_json_get_string (obj, "name", TRUE, &name, error) ||
	    !ppn_name_validate ("name", name, error) ||
	    !ppn_json_get_string (obj, "image", TRUE, &image, error) ||
	    !ppn_name_validate ("image", image, error) ||
	    !ppn_json_get_int (obj, "vcpus", FALSE, 1, limits->max_vcpus, &vcpus, error) ||
	    !ppn_json_get_int (obj, "memory_mib", FALSE, 64, limits->max_memory_mib, &memory_mib, error) ||
	    !ppn_json_get_array (obj, "port_forwards", FALSE, &forwards, error) ||
	    !ppn_json_get_string (obj, "egress", FALSE, &egress, error) ||
	    !ppn_json_get_string (obj, "accel", FALSE, &accel, error))
		return NULL;
	if (egress == NULL)
		egress = "nat";
	if (!ppn_vm_egress_validate (egress, error))
		return NULL;
	/* a requirement on the node; absent, either will do */
	if (accel != NULL && !ppn_vm_accel_validate (accel, error))
		return NULL;
	req->forwards = ppn_forwards_from_json (forwards, limits->max_forwards, FALSE, error);
	if (req->forwards == NULL)
		return NULL;
	req->name = g_strdup (name);
	req->image = g_strdup (image);
	req->egress = g_strdup (egress);
	req->accel = g_strdup (accel);
	req->vcpus = (guint)vcpus;
	req->memory_mib = (guint)memory_mib;
	return g_steal_pointer (&req);
}

PpnVm *
ppn_vm_new (const gchar *id, const gchar *tenant, const PpnVmRequest *req, gint64 now)
{
	PpnVm *vm = g_new0 (PpnVm, 1);

	vm->refcount = 1;
	vm->id = g_strdup (id);
	vm->tenant = g_strdup (tenant);
	vm->state = PPN_VM_STATE_PENDING;
	vm->created_at = now;
	vm->updated_at = now;
	if (req != NULL) {
		vm->name = g_strdup (req->name);
		vm->image = g_strdup (req->image);
		vm->vcpus = req->vcpus;
		vm->memory_mib = req->memory_mib;
		vm->forwards = ppn_forwards_copy (req->forwards);
		vm->egress = g_strdup (req->egress);
	} else {
		vm->forwards = ppn_forwards_new ();
	}
	if (vm->egress == NULL)
		vm->egress = g_strdup ("nat");
	return vm;
}

PpnVm *
ppn_vm_ref (PpnVm *vm)
{
	g_return_val_if_fail (vm != NULL, NULL);
	vm->refcount++;
	return vm;
}

void
ppn_vm_unref (PpnVm *vm)
{
	if (vm == NULL || --vm->refcount > 0)
		return;
	g_free (vm->id);
	g_free (vm->tenant);
	g_free (vm->name);
	g_free (vm->image);
	g_free (vm->egress);
	g_free (vm->node);
	g_clear_pointer (&vm->forwards, g_ptr_array_unref);
	g_free (vm);
}

/* the tenant's view: the owner is implied by who asks, so it is not shown */
JsonNode *
ppn_vm_to_json (const PpnVm *vm)
{
	g_autoptr(JsonObject) obj = json_object_new ();
	g_autofree gchar *created = ppn_json_format_time (vm->created_at);
	JsonNode *node = json_node_new (JSON_NODE_OBJECT);
	gboolean placed = TRUE; /* host sides are shown once a node gave them */

	json_object_set_string_member (obj, "id", vm->id);
	json_object_set_string_member (obj, "name", vm->name);
	json_object_set_string_member (obj, "image", vm->image);
	json_object_set_int_member (obj, "vcpus", vm->vcpus);
	json_object_set_int_member (obj, "memory_mib", vm->memory_mib);
	json_object_set_string_member (obj, "state", ppn_vm_state_to_string (vm->state));
	if (vm->node != NULL)
		json_object_set_string_member (obj, "node", vm->node);
	else
		json_object_set_null_member (obj, "node");
	json_object_set_member (obj, "port_forwards", ppn_forwards_to_json (vm->forwards, placed));
	json_object_set_string_member (obj, "egress", vm->egress);
	json_object_set_string_member (obj, "created_at", created);
	json_node_set_object (node, obj);
	return node;
}
