#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include <string.h>

#include "ppn-controller.h"
#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppn-nodes.h"
#include "ppn-registry.h"

struct _PpnController {
	GObject parent_instance;
	PpnStore *store;
	PpnAgentClient *agents;
	PpnRegistry *registry;
	PpnNodes *nodes;
};

G_DEFINE_TYPE (PpnController, ppn_controller, G_TYPE_OBJECT)

/* One message for a VM that does not exist and for one that belongs to
 * someone else, so the answer tells nothing about other tenants. */
static void
ppn_controller_set_not_found (GError **error)
{
	g_set_error_literal (error, PPN_ERROR, PPN_ERROR_NOT_FOUND, _("No such VM"));
}

/* the single ownership check every tenant path goes through */
static PpnVm *
ppn_controller_lookup_owned (PpnController *self, PpnTenant *tenant, const gchar *id, GError **error)
{
	PpnVm *vm = ppn_registry_lookup (self->registry, id);

	if (vm == NULL || g_strcmp0 (vm->tenant, ppn_tenant_get_name (tenant)) != 0) {
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
		ppn_nodes_release (node, vm->vcpus, vm->memory_mib);
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
		if (vm->node != NULL)
			ppn_nodes_reserve (ppn_nodes_ensure (self->nodes, vm->node), vm->vcpus, vm->memory_mib);
		restored++;
	}
	g_message ("restored %u VM records in %.1f ms", restored,
		   (g_get_monotonic_time () - start) / 1000.0);
	return TRUE;
}

/* ---- create ------------------------------------------------------------ */

static void
ppn_controller_create_destroy_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(PpnVm) vm = user_data;
	g_autoptr(GError) error = NULL;

	if (!ppn_agent_client_destroy_finish (PPN_AGENT_CLIENT (source), res, &error) &&
	    !g_error_matches (error, PPN_ERROR, PPN_ERROR_NOT_FOUND))
		g_warning ("VM %s on node %s: cleaning up after a failed create failed: %s", vm->id, vm->node,
			   error->message);
}

static void
ppn_controller_create_fail (PpnController *self, GTask *task, PpnVm *vm, GError *error)
{
	g_autoptr(GError) store_error = NULL;
	PpnNode *node = ppn_nodes_lookup (self->nodes, vm->node);

	g_warning ("VM %s of tenant %s: create on node %s failed: %s", vm->id, vm->tenant, vm->node,
		   error->message);
	if (!ppn_controller_set_state (self, vm, PPN_VM_STATE_FAILED, &store_error))
		g_warning ("VM %s: cannot record the failure: %s", vm->id, store_error->message);
	/* the agent may have started the domain before the call failed (a
	 * timeout, a lost connection): ask it to make sure nothing runs */
	if (node != NULL && node->agent_url != NULL && !g_error_matches (error, PPN_ERROR, PPN_ERROR_CONFLICT))
		ppn_agent_client_destroy_async (self->agents, node->id, node->agent_url, vm->id, NULL,
						ppn_controller_create_destroy_cb, ppn_vm_ref (vm));
	ppn_controller_forget (self, vm);
	if (error->domain != PPN_ERROR ||
	    (error->code != PPN_ERROR_NO_CAPACITY && error->code != PPN_ERROR_UNAVAILABLE)) {
		error->domain = PPN_ERROR;
		error->code = PPN_ERROR_UNAVAILABLE;
	}
	g_task_return_error (task, error);
}

static void
ppn_controller_create_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	PpnController *self = g_task_get_source_object (task);
	PpnVm *vm = g_task_get_task_data (task);
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnAgentDomain) domain = ppn_agent_client_create_finish (PPN_AGENT_CLIENT (source), res, &error);

	if (domain == NULL) {
		ppn_controller_create_fail (self, task, vm, g_steal_pointer (&error));
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
	g_ptr_array_unref (vm->forwards);
	vm->forwards = g_steal_pointer (&domain->forwards);
	g_free (vm->egress);
	vm->egress = g_steal_pointer (&domain->egress);
	if (!ppn_controller_set_state (self, vm, PPN_VM_STATE_RUNNING, &error)) {
		ppn_controller_create_fail (self, task, vm, g_steal_pointer (&error));
		return;
	}
	g_message ("VM %s (%s) of tenant %s is running on node %s", vm->id, vm->name, vm->tenant, vm->node);
	g_task_return_pointer (task, ppn_vm_ref (vm), (GDestroyNotify)ppn_vm_unref);
}

void
ppn_controller_create_vm_async (PpnController *self,
				PpnTenant *tenant,
				const PpnVmRequest *req,
				GCancellable *cancellable,
				GAsyncReadyCallback callback,
				gpointer user_data)
{
	g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);
	const gchar *owner = ppn_tenant_get_name (tenant);
	guint used, max_vms = ppn_tenant_get_max_vms (tenant);
	g_autoptr(GError) error = NULL;
	g_autofree gchar *id = NULL;
	g_autoptr(PpnVm) vm = NULL;
	PpnNode *node;

	g_return_if_fail (PPN_IS_CONTROLLER (self));
	g_task_set_source_tag (task, ppn_controller_create_vm_async);

	/* The gate. Check and reserve happen in this one main-loop dispatch
	 * with no I/O in between but the store write, so two creates of the
	 * same tenant cannot both see the last free slot. The pending record
	 * is the reservation; it counts until the VM runs or fails. */
	used = ppn_registry_count_tenant (self->registry, owner);
	if (used >= max_vms) {
		g_task_return_new_error (task, PPN_ERROR, PPN_ERROR_QUOTA_EXCEEDED,
					 _("Quota exceeded: at most %u VMs are allowed and %u are in use"),
					 max_vms, used);
		return;
	}
	if (ppn_registry_find_by_name (self->registry, owner, req->name) != NULL) {
		g_task_return_new_error (task, PPN_ERROR, PPN_ERROR_CONFLICT,
					 _("A VM named '%s' already exists"), req->name);
		return;
	}
	if (!ppn_nodes_has_image (self->nodes, req->image)) {
		g_task_return_new_error (task, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
					 _("Field 'image': no image '%s' in the catalog (GET /v1/images lists them)"),
					 req->image);
		return;
	}
	node = ppn_nodes_place (self->nodes, req->image, req->vcpus, req->memory_mib, &error);
	if (node == NULL) {
		g_task_return_error (task, g_steal_pointer (&error));
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
		g_task_return_new_error (task, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
					 _("The fleet cannot record new VMs right now"));
		return;
	}
	ppn_registry_add (self->registry, vm);
	ppn_nodes_reserve (node, vm->vcpus, vm->memory_mib);
	g_task_set_task_data (task, ppn_vm_ref (vm), (GDestroyNotify)ppn_vm_unref);

	/* the create goes on if the tenant hangs up: the VM is theirs and
	 * shows in the listing; so no cancellable here */
	ppn_agent_client_create_async (self->agents, node->id, node->agent_url, vm, NULL, ppn_controller_create_cb,
				       g_steal_pointer (&task));
}

PpnVm *
ppn_controller_create_vm_finish (PpnController *self, GAsyncResult *res, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (res, self), NULL);
	return g_task_propagate_pointer (G_TASK (res), error);
}

/* ---- delete ------------------------------------------------------------ */

static void
ppn_controller_delete_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	PpnController *self = g_task_get_source_object (task);
	PpnVm *vm = g_task_get_task_data (task);
	g_autoptr(GError) error = NULL;

	/* a domain the node does not have is as gone as one it destroyed */
	if (!ppn_agent_client_destroy_finish (PPN_AGENT_CLIENT (source), res, &error) &&
	    !g_error_matches (error, PPN_ERROR, PPN_ERROR_NOT_FOUND)) {
		g_autoptr(GError) store_error = NULL;
		g_warning ("VM %s: destroy on node %s failed: %s", vm->id, vm->node, error->message);
		if (!ppn_controller_set_state (self, vm, PPN_VM_STATE_RUNNING, &store_error))
			g_warning ("VM %s: %s", vm->id, store_error->message);
		g_task_return_new_error (task, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
					 _("Node %s could not destroy the VM: %s"), vm->node, error->message);
		return;
	}
	g_clear_error (&error);
	if (!ppn_controller_set_state (self, vm, PPN_VM_STATE_DELETED, &error)) {
		g_warning ("VM %s is destroyed but the record cannot be updated: %s", vm->id, error->message);
		g_task_return_new_error (task, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
					 _("The VM is destroyed but the fleet cannot record it right now"));
		return;
	}
	g_message ("VM %s (%s) of tenant %s is deleted", vm->id, vm->name, vm->tenant);
	ppn_controller_forget (self, vm);
	g_task_return_boolean (task, TRUE);
}

void
ppn_controller_delete_vm_async (PpnController *self,
				PpnTenant *tenant,
				const gchar *id,
				GCancellable *cancellable,
				GAsyncReadyCallback callback,
				gpointer user_data)
{
	g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);
	g_autoptr(GError) error = NULL;
	PpnVm *vm;
	PpnNode *node;

	g_return_if_fail (PPN_IS_CONTROLLER (self));
	g_task_set_source_tag (task, ppn_controller_delete_vm_async);
	vm = ppn_controller_lookup_owned (self, tenant, id, &error);
	if (vm == NULL) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	if (vm->state == PPN_VM_STATE_PENDING) {
		g_task_return_new_error (task, PPN_ERROR, PPN_ERROR_CONFLICT,
					 _("The VM is still being created; delete it once it is running"));
		return;
	}
	if (vm->state == PPN_VM_STATE_DELETING) {
		g_task_return_new_error (task, PPN_ERROR, PPN_ERROR_CONFLICT, _("The VM is already being deleted"));
		return;
	}
	node = ppn_nodes_lookup (self->nodes, vm->node);
	if (node == NULL || node->agent_url == NULL) {
		g_task_return_new_error (task, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
					 _("Node %s has not reported since the fleet started; try again shortly"),
					 vm->node);
		return;
	}
	if (!ppn_controller_set_state (self, vm, PPN_VM_STATE_DELETING, &error)) {
		g_warning ("VM %s: %s", vm->id, error->message);
		g_task_return_new_error (task, PPN_ERROR, PPN_ERROR_UNAVAILABLE,
					 _("The fleet cannot record changes right now"));
		return;
	}
	g_task_set_task_data (task, ppn_vm_ref (vm), (GDestroyNotify)ppn_vm_unref);
	ppn_agent_client_destroy_async (self->agents, node->id, node->agent_url, vm->id, NULL,
					ppn_controller_delete_cb, g_steal_pointer (&task));
}

gboolean
ppn_controller_delete_vm_finish (PpnController *self, GAsyncResult *res, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (res, self), FALSE);
	return g_task_propagate_boolean (G_TASK (res), error);
}

/* ---- reads ------------------------------------------------------------- */

PpnVm *
ppn_controller_get_vm (PpnController *self, PpnTenant *tenant, const gchar *id, GError **error)
{
	PpnVm *vm;

	g_return_val_if_fail (PPN_IS_CONTROLLER (self), NULL);
	vm = ppn_controller_lookup_owned (self, tenant, id, error);
	return vm != NULL ? ppn_vm_ref (vm) : NULL;
}

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

/* @node_id is the caller's certificate's, never a field of @hb */
gboolean
ppn_controller_heartbeat (PpnController *self, const gchar *node_id, JsonObject *hb, GError **error)
{
	JsonArray *domains = NULL;

	g_return_val_if_fail (PPN_IS_CONTROLLER (self), FALSE);
	return ppn_json_get_array (hb, "domains", TRUE, &domains, error) &&
	       ppn_controller_check_domains (self, node_id, domains, error) &&
	       ppn_nodes_heartbeat (self->nodes, node_id, hb, error);
}

static void
ppn_controller_finalize (GObject *object)
{
	PpnController *self = PPN_CONTROLLER (object);

	g_clear_object (&self->store);
	g_clear_object (&self->agents);
	g_clear_pointer (&self->registry, ppn_registry_free);
	g_clear_pointer (&self->nodes, ppn_nodes_free);
	G_OBJECT_CLASS (ppn_controller_parent_class)->finalize (object);
}

static void
ppn_controller_class_init (PpnControllerClass *klass)
{
	G_OBJECT_CLASS (klass)->finalize = ppn_controller_finalize;
}

static void
ppn_controller_init (PpnController *self)
{
	self->registry = ppn_registry_new ();
}

PpnController *
ppn_controller_new (PpnStore *store, PpnAgentClient *agents, guint node_timeout)
{
	PpnController *self = g_object_new (PPN_TYPE_CONTROLLER, NULL);

	self->store = g_object_ref (store);
	self->agents = g_object_ref (agents);
	self->nodes = ppn_nodes_new (node_timeout);
	return self;
}
