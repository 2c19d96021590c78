#include "config.h"

#define G_LOG_DOMAIN "ppn-fleet"

#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-i18n.h"
#include "ppn-json.h"
#include "ppn-nodes.h"

struct _PpnNodes {
	GHashTable *by_id; /* id -> PpnNode */
	gint64 timeout_usec;
};

static void
ppn_node_free (PpnNode *node)
{
	g_free (node->id);
	g_free (node->agent_url);
	g_free (node->accel);
	g_clear_pointer (&node->images, json_array_unref);
	g_free (node);
}

PpnNodes *
ppn_nodes_new (guint timeout_seconds)
{
	PpnNodes *self = g_new0 (PpnNodes, 1);

	self->by_id = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify)ppn_node_free);
	self->timeout_usec = (gint64)timeout_seconds * G_USEC_PER_SEC;
	return self;
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
	JsonArray *images = NULL;
	JsonNode *cap_node = json_object_get_member (hb, "capacity");
	JsonObject *cap;
	gint64 vcpus = 0, memory_mib = 0, free_ports = 0;
	g_autoptr(GUri) uri = NULL;
	PpnNode *node;

	if (!ppn_json_get_string (hb, "node_id", TRUE, &node_id, error) ||
	    !ppn_json_get_string (hb, "agent_url", TRUE, &agent_url, error) ||
	    !ppn_json_get_string (hb, "accel", TRUE, &accel, error) ||
	    !ppn_json_get_string (hb, "libvirt", FALSE, &libvirt, error) ||
	    !ppn_json_get_array (hb, "images", FALSE, &images, error) ||
	    !ppn_nodes_validate_images (images, error))
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
	if (g_strcmp0 (accel, "kvm") != 0 && g_strcmp0 (accel, "tcg") != 0) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
				     _("Field 'accel' must be \"kvm\" or \"tcg\""));
		return FALSE;
	}
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
	if (libvirt != NULL && g_strcmp0 (libvirt, "ok") != 0 && !node->degraded)
		g_warning ("node %s reports its libvirt %s: not placing on it", id, libvirt);
	else if ((libvirt == NULL || g_strcmp0 (libvirt, "ok") == 0) && node->degraded)
		g_message ("node %s reports its libvirt back", id);
	node->degraded = libvirt != NULL && g_strcmp0 (libvirt, "ok") != 0;
	node->last_seen = g_get_monotonic_time ();
	node->silent_marked = FALSE;
	return TRUE;
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

/* spread: the live node with the image and the most free memory, then
 * the most free vcpus, then the fewest VMs; ties broken by node id so the
 * choice is reproducible */
PpnNode *
ppn_nodes_place (PpnNodes *self, const gchar *image, guint vcpus, guint memory_mib, GError **error)
{
	GHashTableIter iter;
	PpnNode *node, *best = NULL;

	g_hash_table_iter_init (&iter, self->by_id);
	while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&node)) {
		guint free_mem, free_cpu;
		if (!ppn_nodes_is_alive (self, node) || node->degraded || !ppn_node_has_image (node, image))
			continue;
		if (node->used_vcpus + vcpus > node->vcpus || node->used_memory_mib + memory_mib > node->memory_mib)
			continue;
		free_mem = node->memory_mib - node->used_memory_mib;
		free_cpu = node->vcpus - node->used_vcpus;
		if (best == NULL || free_mem > best->memory_mib - best->used_memory_mib ||
		    (free_mem == best->memory_mib - best->used_memory_mib &&
		     (free_cpu > best->vcpus - best->used_vcpus ||
		      (free_cpu == best->vcpus - best->used_vcpus &&
		       (node->placed < best->placed ||
			(node->placed == best->placed && g_strcmp0 (node->id, best->id) < 0))))))
			best = node;
	}
	if (best == NULL) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_NO_CAPACITY,
			     _("No node has room for %u vCPUs and %u MiB with image '%s' right now"), vcpus,
			     memory_mib, image);
		return NULL;
	}
	return best;
}

void
ppn_nodes_reserve (PpnNode *node, guint vcpus, guint memory_mib)
{
	node->used_vcpus += vcpus;
	node->used_memory_mib += memory_mib;
	node->placed++;
}

void
ppn_nodes_release (PpnNode *node, guint vcpus, guint memory_mib)
{
	node->used_vcpus -= MIN (vcpus, node->used_vcpus);
	node->used_memory_mib -= MIN (memory_mib, node->used_memory_mib);
	if (node->placed > 0)
		node->placed--;
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
