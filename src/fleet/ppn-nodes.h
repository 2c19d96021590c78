#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* What the fleet knows of each node: what its last heartbeat said, and
 * what the fleet itself placed there (counted at placement, so in-flight
 * creates count before the node reports them). Main-loop only. */
typedef struct {
	gchar *id;
	gchar *agent_url;
	gchar *accel;
	guint vcpus;	  /* offered in total */
	guint memory_mib; /* offered in total */
	guint free_ports;
	JsonArray *images;
	gint64 last_seen; /* monotonic usec, 0 = never */
	gboolean degraded; /* its libvirt is unreachable: alive, but not placed on */
	guint used_vcpus;
	guint used_memory_mib;
	guint placed;
	gboolean silent_marked; /* its VMs were marked unknown */
} PpnNode;

typedef struct _PpnNodes PpnNodes;

PpnNodes *ppn_nodes_new (guint timeout_seconds);
void ppn_nodes_free (PpnNodes *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnNodes, ppn_nodes_free)

PpnNode *ppn_nodes_ensure (PpnNodes *self, const gchar *id);
PpnNode *ppn_nodes_lookup (PpnNodes *self, const gchar *id);
gboolean ppn_nodes_is_alive (PpnNodes *self, const PpnNode *node);
gboolean ppn_nodes_heartbeat (PpnNodes *self, const gchar *id, JsonObject *hb, GError **error);
PpnNode *ppn_nodes_place (PpnNodes *self, const gchar *image, guint vcpus, guint memory_mib, GError **error);
void ppn_nodes_reserve (PpnNode *node, guint vcpus, guint memory_mib);
void ppn_nodes_release (PpnNode *node, guint vcpus, guint memory_mib);
gboolean ppn_nodes_has_image (PpnNodes *self, const gchar *image);
JsonNode *ppn_nodes_images_to_json (PpnNodes *self);

G_END_DECLS
