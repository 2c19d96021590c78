#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppn-metrics.h"
#include "ppn-nodes.h"
#include "ppn-vm.h"

struct _PpnNodes {
	GHashTable *by_id; /* id -> PpnNode */
	gint64 timeout_usec;
	PpnPlacement strategy;
};

/* one VM's share of a node */
typedef struct {
	guint vcpus;
	guint memory_mib;
	guint ports;	   /* counted against free_ports while not reported */
	gboolean reported; /* the node runs it: its last heartbeat said so */
} PpnNodeLoad;

static const gchar *const ppn_placement_names[] = {
	[PPN_PLACEMENT_SPREAD] = "spread",
	[PPN_PLACEMENT_PACK] = "pack",
};

const gchar *
ppn_placement_to_string (PpnPlacement strategy)
{
	if ((guint)strategy >= G_N_ELEMENTS (ppn_placement_names))
		return "spread";
	return ppn_placement_names[strategy];
}

gboolean
ppn_placement_from_string (const gchar *str, PpnPlacement *strategy)
{
	g_return_val_if_fail (strategy != NULL, FALSE);
	for (guint i = 0; i < G_N_ELEMENTS (ppn_placement_names); i++) {
		if (g_strcmp0 (str, ppn_placement_names[i]) == 0) {
			*strategy = (PpnPlacement)i;
			return TRUE;
		}
	}
	return FALSE;
}

static void
ppn_node_free (PpnNode *node)
{
	g_free (node->id);
	g_free (node->agent_url);
	g_free (node->accel);
	g_clear_pointer (&node->images, json_array_unref);
	g_clear_pointer (&node->load, g_hash_table_unref);
	g_free (node);
}

PpnNodes *
ppn_nodes_new (guint timeout_seconds)
{
	PpnNodes *self = g_new0 (PpnNodes, 1);

	self->by_id = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify)ppn_node_free);
	self->timeout_usec = (gint64)timeout_seconds * G_USEC_PER_SEC;
	self->strategy = PPN_PLACEMENT_SPREAD;
	return self;
}

void
ppn_nodes_set_placement (PpnNodes *self, PpnPlacement strategy)
{
	g_return_if_fail (self != NULL);
	self->strategy = strategy;
}

void
ppn_nodes_free (PpnNodes *self)
{
	if (self == NULL)
		return;
	g_hash_table_unref (self->by_id);
	g_free (self);
}

PpnNode *
ppn_nodes_ensure (PpnNodes *self, const gchar *id)
{
	PpnNode *node = g_hash_table_lookup (self->by_id, id);

	if (node == NULL) {
		node = g_new0 (PpnNode, 1);
		node->id = g_strdup (id);
		node->load = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
		g_hash_table_insert (self->by_id, node->id, node);
	}
	return node;
}

PpnNode *
ppn_nodes_lookup (PpnNodes *self, const gchar *id)
{
	return id != NULL ? g_hash_table_lookup (self->by_id, id) : NULL;
}

gboolean
ppn_nodes_is_alive (PpnNodes *self, const PpnNode *node)
{
	return node != NULL && node->last_seen != 0 && node->agent_url != NULL &&
	       g_get_monotonic_time () - node->last_seen < self->timeout_usec;
}

/* ---- load: every VM once, reserved or reported ------------------------- */

static void
ppn_node_load_remove (PpnNode *node, const gchar *vm_id)
{
	PpnNodeLoad *load = g_hash_table_lookup (node->load, vm_id);

	if (load == NULL)
		return;
	node->used_vcpus -= MIN (load->vcpus, node->used_vcpus);
	node->used_memory_mib -= MIN (load->memory_mib, node->used_memory_mib);
	if (!load->reported)
		node->reserved_ports -= MIN (load->ports, node->reserved_ports);
	g_hash_table_remove (node->load, vm_id);
}

/* replaces what @vm_id held before */
static void
ppn_node_load_set (PpnNode *node, const gchar *vm_id, guint vcpus, guint memory_mib, guint ports, gboolean reported)
{
	PpnNodeLoad *load = g_new0 (PpnNodeLoad, 1);

	ppn_node_load_remove (node, vm_id);
	load->vcpus = vcpus;
	load->memory_mib = memory_mib;
	load->ports = ports;
	load->reported = reported;
	node->used_vcpus += vcpus;
	node->used_memory_mib += memory_mib;
	if (!reported)
		node->reserved_ports += ports;
	g_hash_table_insert (node->load, g_strdup (vm_id), load);
}

/* a VM placed on @node before the node reports it; a VM the node reports
 * already is counted as it is */
void
ppn_nodes_reserve (PpnNode *node, const gchar *vm_id, guint vcpus, guint memory_mib, guint ports)
{
	g_return_if_fail (node != NULL && vm_id != NULL);
	if (g_hash_table_contains (node->load, vm_id))
		return;
	ppn_node_load_set (node, vm_id, vcpus, memory_mib, ports, FALSE);
}

/* the VM is gone from @node (or never got there): whatever it held is free */
void
ppn_nodes_release (PpnNode *node, const gchar *vm_id)
{
	g_return_if_fail (node != NULL && vm_id != NULL);
	ppn_node_load_remove (node, vm_id);
}

guint
ppn_nodes_count_vms (const PpnNode *node)
{
	g_return_val_if_fail (node != NULL, 0);
	return g_hash_table_size (node->load);
}

/* placed by the fleet, not reported by the node yet */
guint
ppn_nodes_count_reserved (const PpnNode *node)
{
	GHashTableIter iter;
	PpnNodeLoad *load;
	guint n = 0;

	g_return_val_if_fail (node != NULL, 0);
	g_hash_table_iter_init (&iter, node->load);
	while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&load))
		n += load->reported ? 0 : 1;
	return n;
}

/* the domains of a heartbeat whose list is complete: what they hold
 * replaces what the previous report said, and their reservations */
typedef struct {
	const gchar *vm_id;
	guint vcpus;
	guint memory_mib;
} PpnNodeReported;

static GArray *
ppn_nodes_parse_domains (JsonArray *domains, GError **error)
{
	g_autoptr(GArray) out = g_array_new (FALSE, TRUE, sizeof (PpnNodeReported));

	for (guint i = 0; domains != NULL && i < json_array_get_length (domains); i++) {
		JsonNode *el = json_array_get_element (domains, i);
		PpnNodeReported r = {NULL, 0, 0};
		gint64 vcpus = 0, memory_mib = 0;
		JsonObject *obj;

		if (!JSON_NODE_HOLDS_OBJECT (el)) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'domains[%u]' must be an object"), i);
			return NULL;
		}
		obj = json_node_get_object (el);
		if (!ppn_json_get_string (obj, "vm_id", TRUE, &r.vm_id, error) ||
		    !ppn_json_get_int (obj, "vcpus", FALSE, 0, 1 << 20, &vcpus, error) ||
		    !ppn_json_get_int (obj, "memory_mib", FALSE, 0, G_MAXINT32, &memory_mib, error)) {
			g_prefix_error (error, "domains[%u]: ", i);
			return NULL;
		}
		r.vcpus = (guint)vcpus;
		r.memory_mib = (guint)memory_mib;
		g_array_append_val (out, r);
	}
	return g_steal_pointer (&out);
}

static void
ppn_node_load_reported (PpnNode *node, GArray *reported)
{
	g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
	g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func (g_free);
	GHashTableIter iter;
	const gchar *vm_id;
	PpnNodeLoad *load;

	for (guint i = 0; i < reported->len; i++)
		g_hash_table_add (seen, (gpointer)g_array_index (reported, PpnNodeReported, i).vm_id);
	g_hash_table_iter_init (&iter, node->load);
	while (g_hash_table_iter_next (&iter, (gpointer *)&vm_id, (gpointer *)&load)) {
		if (load->reported && !g_hash_table_contains (seen, vm_id))
			g_ptr_array_add (gone, g_strdup (vm_id));
	}
	for (guint i = 0; i < gone->len; i++)
		ppn_node_load_remove (node, g_ptr_array_index (gone, i));
	for (guint i = 0; i < reported->len; i++) {
		PpnNodeReported *r = &g_array_index (reported, PpnNodeReported, i);
		PpnNodeLoad *before = g_hash_table_lookup (node->load, r->vm_id);
		/* an older agent that leaves the sizes out keeps the reservation's */
		guint vcpus = r->vcpus != 0 || before == NULL ? r->vcpus : before->vcpus;
		guint memory_mib = r->memory_mib != 0 || before == NULL ? r->memory_mib : before->memory_mib;
		ppn_node_load_set (node, r->vm_id, vcpus, memory_mib, 0, TRUE);
	}
}

/* what placement sees: the node's count less the reservations' forwards */
static guint
ppn_node_free_ports (const PpnNode *node)
{
	return node->free_ports - MIN (node->reserved_ports, node->free_ports);
}

/* ---- heartbeats --------------------------------------------------------- */

static gboolean
ppn_nodes_validate_images (JsonArray *images, GError **error)
{
	for (guint i = 0; images != NULL && i < json_array_get_length (images); i++) {
		JsonNode *el = json_array_get_element (images, i);
		const gchar *name = NULL;
		if (!JSON_NODE_HOLDS_OBJECT (el) ||
		    !ppn_json_get_string (json_node_get_object (el), "name", TRUE, &name, error) ||
		    !ppn_name_validate ("images[].name", name, error))
			return FALSE;
	}
	return TRUE;
}

/* @id comes from the caller's certificate, never from the body */
gboolean
ppn_nodes_heartbeat (PpnNodes *self, const gchar *id, JsonObject *hb, GError **error)
{
	const gchar *agent_url = NULL, *accel = NULL, *node_id = NULL, *libvirt = NULL;
	JsonArray *images = NULL, *domains = NULL;
	JsonNode *cap_node = json_object_get_member (hb, "capacity");
	JsonObject *cap;
	gint64 vcpus = 0, memory_mib = 0, free_ports = 0;
	g_autoptr(GUri) uri = NULL;
	g_autoptr(GArray) reported = NULL;
	gboolean degraded;
	PpnNode *node;

	if (!ppn_json_get_string (hb, "node_id", TRUE, &node_id, error) ||
	    !ppn_json_get_string (hb, "agent_url", TRUE, &agent_url, error) ||
	    !ppn_json_get_string (hb, "accel", TRUE, &accel, error) ||
	    !ppn_json_get_string (hb, "libvirt", FALSE, &libvirt, error) ||
	    !ppn_json_get_array (hb, "images", FALSE, &images, error) ||
	    !ppn_nodes_validate_images (images, error) ||
	    !ppn_json_get_array (hb, "domains", FALSE, &domains, error))
		return FALSE;
	reported = ppn_nodes_parse_domains (domains, error);
	if (reported == NULL)
		return FALSE;
	if (g_strcmp0 (node_id, id) != 0) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_FORBIDDEN,
			     _("Heartbeat names node '%s' but the certificate is node '%s'"), node_id, id);
		return FALSE;
	}
	uri = g_uri_parse (agent_url, G_URI_FLAGS_NONE, NULL);
	if (uri == NULL || g_strcmp0 (g_uri_get_scheme (uri), "https") != 0) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'agent_url' must be an https:// URL"));
		return FALSE;
	}
	if (!ppn_vm_accel_validate (accel, error))
		return FALSE;
	if (cap_node == NULL || !JSON_NODE_HOLDS_OBJECT (cap_node)) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'capacity' is required"));
		return FALSE;
	}
	/* two live nodes at one address would share the fleet's connections
	 * to it: the second one is refused until the first is gone */
	{
		GHashTableIter iter;
		PpnNode *other;
		g_hash_table_iter_init (&iter, self->by_id);
		while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&other)) {
			if (g_strcmp0 (other->id, id) != 0 && g_strcmp0 (other->agent_url, agent_url) == 0 &&
			    ppn_nodes_is_alive (self, other)) {
				g_set_error (error, PPN_ERROR, PPN_ERROR_CONFLICT,
					     _("Node %s advertises %s, the address of live node %s"), id, agent_url,
					     other->id);
				return FALSE;
			}
		}
	}
	cap = json_node_get_object (cap_node);
	if (!ppn_json_get_int (cap, "vcpus", TRUE, 0, 1 << 20, &vcpus, error) ||
	    !ppn_json_get_int (cap, "memory_mib", TRUE, 0, G_MAXINT32, &memory_mib, error) ||
	    !ppn_json_get_int (cap, "free_ports", TRUE, 0, 65535, &free_ports, error))
		return FALSE;

	node = ppn_nodes_ensure (self, id);
	if (node->last_seen == 0 || !ppn_nodes_is_alive (self, node))
		g_message ("node %s is alive at %s (%s, %u vcpus, %u MiB)", id, agent_url, accel,
			   (guint)vcpus, (guint)memory_mib);
	g_free (node->agent_url);
	node->agent_url = g_strdup (agent_url);
	g_free (node->accel);
	node->accel = g_strdup (accel);
	node->vcpus = (guint)vcpus;
	node->memory_mib = (guint)memory_mib;
	node->free_ports = (guint)free_ports;
	g_clear_pointer (&node->images, json_array_unref);
	node->images = images != NULL ? json_array_ref (images) : json_array_new ();
	degraded = libvirt != NULL && g_strcmp0 (libvirt, "ok") != 0;
	if (degraded && !node->degraded)
		g_warning ("node %s reports its libvirt %s: not placing on it", id, libvirt);
	else if (!degraded && node->degraded)
		g_message ("node %s reports its libvirt back", id);
	node->degraded = degraded;
	/* a degraded node's empty list says nothing: its load stays as it was */
	if (!degraded)
		ppn_node_load_reported (node, reported);
	node->last_seen = g_get_monotonic_time ();
	node->silent_marked = FALSE;
	if (node->unreachable)
		g_message ("node %s heartbeats again after a failed call: placing on it again", id);
	node->unreachable = FALSE;
	return TRUE;
}

void
ppn_nodes_mark_unreachable (PpnNode *node, const GError *why)
{
	if (node == NULL || node->unreachable)
		return;
	g_warning ("node %s: its agent failed a call (%s): not placing on it until its next heartbeat", node->id,
		   why != NULL ? why->message : "?");
	node->unreachable = TRUE;
}

static gboolean
ppn_node_has_image (const PpnNode *node, const gchar *image)
{
	for (guint i = 0; node->images != NULL && i < json_array_get_length (node->images); i++) {
		JsonObject *obj = json_array_get_object_element (node->images, i);
		if (g_strcmp0 (json_object_get_string_member_with_default (obj, "name", NULL), image) == 0)
			return TRUE;
	}
	return FALSE;
}

gboolean
ppn_nodes_has_image (PpnNodes *self, const gchar *image)
{
	GHashTableIter iter;
	PpnNode *node;

	g_hash_table_iter_init (&iter, self->by_id);
	while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&node)) {
		if (ppn_nodes_is_alive (self, node) && ppn_node_has_image (node, image))
			return TRUE;
	}
	return FALSE;
}

/* ---- placement --------------------------------------------------------- */

/* why a node cannot take a VM; a later reason means it came closer */
typedef enum {
	PPN_UNFIT_NONE,
	PPN_UNFIT_SILENT,
	PPN_UNFIT_DEGRADED,
	PPN_UNFIT_IMAGE,
	PPN_UNFIT_ACCEL,
	PPN_UNFIT_TOO_SMALL, /* even empty it could not */
	PPN_UNFIT_FULL,	     /* not with what it has now */
	PPN_UNFIT_PORTS,
	PPN_UNFIT_FITS,
} PpnUnfit;

static PpnUnfit
ppn_nodes_check (PpnNodes *self, const PpnNode *node, const PpnPlacementNeeds *needs)
{
	if (!ppn_nodes_is_alive (self, node))
		return PPN_UNFIT_SILENT;
	if (node->degraded || node->unreachable)
		return PPN_UNFIT_DEGRADED;
	if (!ppn_node_has_image (node, needs->image))
		return PPN_UNFIT_IMAGE;
	if (needs->accel != NULL && g_strcmp0 (node->accel, needs->accel) != 0)
		return PPN_UNFIT_ACCEL;
	if (needs->vcpus > node->vcpus || needs->memory_mib > node->memory_mib)
		return PPN_UNFIT_TOO_SMALL;
	if ((guint64)node->used_vcpus + needs->vcpus > node->vcpus ||
	    (guint64)node->used_memory_mib + needs->memory_mib > node->memory_mib)
		return PPN_UNFIT_FULL;
	if (needs->ports > ppn_node_free_ports (node))
		return PPN_UNFIT_PORTS;
	return PPN_UNFIT_FITS;
}

/* the share of a node left free after placing @needs, of whichever of
 * vcpus and memory runs out first, as a fraction num/den */
typedef struct {
	guint64 num;
	guint64 den;
} PpnShare;

static gint
ppn_share_compare (PpnShare a, PpnShare b)
{
	guint64 l = a.num * b.den, r = b.num * a.den;

	return l < r ? -1 : l > r ? 1 : 0;
}

static PpnShare
ppn_nodes_free_share (const PpnNode *node, const PpnPlacementNeeds *needs)
{
	PpnShare cpu = {node->vcpus - node->used_vcpus - needs->vcpus, node->vcpus};
	PpnShare mem = {node->memory_mib - node->used_memory_mib - needs->memory_mib, node->memory_mib};

	return ppn_share_compare (cpu, mem) <= 0 ? cpu : mem;
}

/* < 0 when @a is the better choice; never 0 for two nodes */
static gint
ppn_nodes_compare (PpnNodes *self, const PpnNode *a, const PpnNode *b, const PpnPlacementNeeds *needs)
{
	gint by_share = ppn_share_compare (ppn_nodes_free_share (b, needs), ppn_nodes_free_share (a, needs));
	guint vms_a = ppn_nodes_count_vms (a), vms_b = ppn_nodes_count_vms (b);
	gint by_vms = vms_a < vms_b ? -1 : vms_a > vms_b ? 1 : 0;

	/* spread: the most free share, then the fewest VMs; pack: the
	 * opposite; then the node id, so the choice is reproducible */
	if (self->strategy == PPN_PLACEMENT_PACK) {
		by_share = -by_share;
		by_vms = -by_vms;
	}
	if (by_share != 0)
		return by_share;
	if (by_vms != 0)
		return by_vms;
	return g_strcmp0 (a->id, b->id);
}

/* what stopped the nodes that came closest: the requirement to name */
static void
ppn_nodes_set_unfit (PpnUnfit closest, const PpnPlacementNeeds *needs, guint largest_vcpus, guint largest_mib,
		     GError **error)
{
	switch (closest) {
	case PPN_UNFIT_NONE:
	case PPN_UNFIT_SILENT:
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_NO_CAPACITY, _("No node is alive right now"));
		break;
	case PPN_UNFIT_DEGRADED:
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_NO_CAPACITY,
				     _("No node can take VMs right now: the live nodes cannot reach their libvirt, or"
				       " their agents failed a call since their last heartbeat"));
		break;
	case PPN_UNFIT_IMAGE:
		g_set_error (error, PPN_ERROR, PPN_ERROR_NO_CAPACITY, _("No live node offers image '%s' right now"),
			     needs->image);
		break;
	case PPN_UNFIT_ACCEL:
		g_set_error (error, PPN_ERROR, PPN_ERROR_NO_CAPACITY,
			     _("Requirement 'accel': no live node with image '%s' offers accelerator '%s'"),
			     needs->image, needs->accel);
		break;
	case PPN_UNFIT_TOO_SMALL:
		g_set_error (error, PPN_ERROR, PPN_ERROR_NO_CAPACITY,
			     _("No live node is large enough for %u vCPUs and %u MiB: the most they offer is %u"
			       " vCPUs and %u MiB"),
			     needs->vcpus, needs->memory_mib, largest_vcpus, largest_mib);
		break;
	case PPN_UNFIT_FULL:
		g_set_error (error, PPN_ERROR, PPN_ERROR_NO_CAPACITY,
			     _("No node has room for %u vCPUs and %u MiB with image '%s' right now"), needs->vcpus,
			     needs->memory_mib, needs->image);
		break;
	case PPN_UNFIT_PORTS:
	case PPN_UNFIT_FITS:
	default:
		g_set_error (error, PPN_ERROR, PPN_ERROR_NO_CAPACITY,
			     _("No node with room for the VM has %u free host ports for its port forwards right now"),
			     needs->ports);
		break;
	}
}

/* The node for a VM, by the strategy, among the live, healthy nodes with
 * the image, the accelerator asked for, room for its vcpus and memory
 * (what runs there and what is on its way) and a free host port for each
 * forward. Nothing is reserved here: the caller reserves what it places. */
PpnNode *
ppn_nodes_place (PpnNodes *self, const PpnPlacementNeeds *needs, GError **error)
{
	GHashTableIter iter;
	PpnNode *node, *best = NULL;
	PpnUnfit closest = PPN_UNFIT_NONE;
	guint largest_vcpus = 0, largest_mib = 0;

	g_return_val_if_fail (self != NULL && needs != NULL && needs->image != NULL, NULL);
	g_hash_table_iter_init (&iter, self->by_id);
	while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&node)) {
		PpnUnfit unfit = ppn_nodes_check (self, node, needs);

		closest = MAX (closest, unfit);
		if (unfit >= PPN_UNFIT_TOO_SMALL) {
			largest_vcpus = MAX (largest_vcpus, node->vcpus);
			largest_mib = MAX (largest_mib, node->memory_mib);
		}
		if (unfit == PPN_UNFIT_FITS && (best == NULL || ppn_nodes_compare (self, node, best, needs) < 0))
			best = node;
	}
	if (best == NULL) {
		ppn_nodes_set_unfit (closest, needs, largest_vcpus, largest_mib, error);
		return NULL;
	}
	return best;
}

/* the catalog a tenant sees: every image some live node offers, once */
JsonNode *
ppn_nodes_images_to_json (PpnNodes *self)
{
	g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
	g_autoptr(GList) ids = g_hash_table_get_keys (self->by_id);
	g_autoptr(JsonArray) out = json_array_new ();
	JsonNode *node_out = json_node_new (JSON_NODE_ARRAY);

	ids = g_list_sort (ids, (GCompareFunc)g_strcmp0);
	for (GList *l = ids; l != NULL; l = l->next) {
		PpnNode *node = g_hash_table_lookup (self->by_id, l->data);
		if (!ppn_nodes_is_alive (self, node))
			continue;
		for (guint i = 0; node->images != NULL && i < json_array_get_length (node->images); i++) {
			JsonObject *img = json_array_get_object_element (node->images, i);
			const gchar *name = json_object_get_string_member_with_default (img, "name", NULL);
			const gchar *desc = json_object_get_string_member_with_default (img, "description", "");
			JsonObject *copy;
			if (name == NULL || !g_hash_table_add (seen, (gpointer)name))
				continue;
			copy = json_object_new ();
			json_object_set_string_member (copy, "name", name);
			json_object_set_string_member (copy, "description", desc);
			json_array_add_object_element (out, copy);
		}
	}
	json_node_set_array (node_out, out);
	return node_out;
}

static const gchar *
ppn_nodes_state (PpnNodes *self, const PpnNode *node)
{
	if (!ppn_nodes_is_alive (self, node))
		return "silent";
	if (node->degraded)
		return "degraded";
	return node->unreachable ? "unreachable" : "alive";
}

static void
ppn_nodes_member_string (JsonBuilder *b, const gchar *member, const gchar *value)
{
	json_builder_set_member_name (b, member);
	if (value != NULL)
		json_builder_add_string_value (b, value);
	else
		json_builder_add_null_value (b);
}

static void
ppn_nodes_member_int (JsonBuilder *b, const gchar *member, gint64 value)
{
	json_builder_set_member_name (b, member);
	json_builder_add_int_value (b, value);
}

/* the operators' view: every node the fleet knows, by id */
JsonNode *
ppn_nodes_to_json (PpnNodes *self)
{
	g_autoptr(GList) ids = g_hash_table_get_keys (self->by_id);
	g_autoptr(JsonBuilder) b = json_builder_new ();
	gint64 now = g_get_monotonic_time ();

	g_return_val_if_fail (self != NULL, NULL);
	ids = g_list_sort (ids, (GCompareFunc)g_strcmp0);
	json_builder_begin_object (b);
	json_builder_set_member_name (b, "nodes");
	json_builder_begin_array (b);
	for (GList *l = ids; l != NULL; l = l->next) {
		PpnNode *node = g_hash_table_lookup (self->by_id, l->data);
		json_builder_begin_object (b);
		ppn_nodes_member_string (b, "id", node->id);
		ppn_nodes_member_string (b, "state", ppn_nodes_state (self, node));
		json_builder_set_member_name (b, "alive");
		json_builder_add_boolean_value (b, ppn_nodes_is_alive (self, node));
		json_builder_set_member_name (b, "degraded");
		json_builder_add_boolean_value (b, node->degraded);
		ppn_nodes_member_string (b, "agent_url", node->agent_url);
		/* null: not heard from since the fleet started */
		if (node->last_seen != 0)
			ppn_nodes_member_int (b, "heartbeat_age_ms", (now - node->last_seen) / 1000);
		else
			ppn_nodes_member_string (b, "heartbeat_age_ms", NULL);
		ppn_nodes_member_string (b, "accel", node->accel);
		ppn_nodes_member_int (b, "vcpus", node->vcpus);
		ppn_nodes_member_int (b, "used_vcpus", node->used_vcpus);
		ppn_nodes_member_int (b, "memory_mib", node->memory_mib);
		ppn_nodes_member_int (b, "used_memory_mib", node->used_memory_mib);
		ppn_nodes_member_int (b, "vms", ppn_nodes_count_vms (node));
		ppn_nodes_member_int (b, "reserved", ppn_nodes_count_reserved (node));
		ppn_nodes_member_int (b, "free_ports", ppn_node_free_ports (node));
		json_builder_set_member_name (b, "images");
		json_builder_begin_array (b);
		for (guint i = 0; node->images != NULL && i < json_array_get_length (node->images); i++) {
			JsonObject *img = json_array_get_object_element (node->images, i);
			json_builder_add_string_value (b, json_object_get_string_member (img, "name"));
		}
		json_builder_end_array (b);
		json_builder_end_object (b);
	}
	json_builder_end_array (b);
	json_builder_end_object (b);
	return json_builder_get_root (b);
}

void
ppn_nodes_collect_metrics (PpnNodes *self, GString *out)
{
	static const gchar *const states[] = {"alive", "degraded", "unreachable", "silent", NULL};
	guint by_state[G_N_ELEMENTS (states)] = {0};
	guint64 vcpus = 0, used_vcpus = 0, memory = 0, used_memory = 0, free_ports = 0;
	GHashTableIter iter;
	PpnNode *node;

	g_hash_table_iter_init (&iter, self->by_id);
	while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&node)) {
		const gchar *state = ppn_nodes_state (self, node);
		for (guint i = 0; states[i] != NULL; i++) {
			if (g_strcmp0 (state, states[i]) == 0)
				by_state[i]++;
		}
		if (!ppn_nodes_is_alive (self, node))
			continue;
		vcpus += node->vcpus;
		used_vcpus += node->used_vcpus;
		memory += node->memory_mib;
		used_memory += node->used_memory_mib;
		free_ports += node->free_ports;
	}
	ppn_metrics_family (out, "ppn_nodes", "gauge", "Nodes by state (alive and placed on, degraded, silent).");
	for (guint i = 0; states[i] != NULL; i++)
		g_string_append_printf (out, "ppn_nodes{state=\"%s\"} %u\n", states[i], by_state[i]);
	ppn_metrics_family (out, "ppn_capacity_vcpus", "gauge", "vCPUs the live nodes offer, and how many are used.");
	g_string_append_printf (out, "ppn_capacity_vcpus{kind=\"total\"} %" G_GUINT64_FORMAT "\n", vcpus);
	g_string_append_printf (out, "ppn_capacity_vcpus{kind=\"used\"} %" G_GUINT64_FORMAT "\n", used_vcpus);
	ppn_metrics_family (out, "ppn_capacity_memory_mib", "gauge", "Memory the live nodes offer, and how much is used.");
	g_string_append_printf (out, "ppn_capacity_memory_mib{kind=\"total\"} %" G_GUINT64_FORMAT "\n", memory);
	g_string_append_printf (out, "ppn_capacity_memory_mib{kind=\"used\"} %" G_GUINT64_FORMAT "\n", used_memory);
	ppn_metrics_family (out, "ppn_free_host_ports", "gauge", "Free host ports on the live nodes, as last reported.");
	g_string_append_printf (out, "ppn_free_host_ports %" G_GUINT64_FORMAT "\n", free_ports);
}
