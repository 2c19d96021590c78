#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* which of the nodes that fit a VM gets it */
typedef enum {
	PPN_PLACEMENT_SPREAD, /* the emptiest: the most free share of its bottleneck resource */
	PPN_PLACEMENT_PACK,   /* the fullest: the least free share left after placing */
} PpnPlacement;

const gchar *ppn_placement_to_string (PpnPlacement strategy);
gboolean ppn_placement_from_string (const gchar *str, PpnPlacement *strategy);

/* what a VM needs of a node */
typedef struct {
	const gchar *image;
	guint vcpus;
	guint memory_mib;
	guint ports;	    /* host ports: one per port forward */
	const gchar *accel; /* "kvm" or "tcg"; NULL: either */
} PpnPlacementNeeds;

/* What the fleet knows of each node: what its last heartbeat said, and
 * what runs there or is on its way. Main-loop only.
 *
 * The load counts each VM once, by vm id: placed by the fleet and not yet
 * reported (a reservation, counted before the node knows of it), or
 * reported by the node (what libvirt says it runs, whether or not the
 * fleet has a record of it). A reservation the node reports becomes a
 * reported entry; a reported entry the node stops reporting is gone. */
typedef struct {
	gchar *id;
	gchar *agent_url;
	gchar *accel;
	guint vcpus;	  /* offered in total */
	guint memory_mib; /* offered in total */
	guint free_ports; /* free host ports, as last reported */
	JsonArray *images;
	gint64 last_seen; /* monotonic usec, 0 = never */
	gboolean degraded; /* its libvirt is unreachable: alive, but not placed on */
	gboolean unreachable; /* a call to its agent failed since its last heartbeat: not placed on */
	gboolean silent_marked; /* its VMs were marked unknown */
	GHashTable *load; /* vm id -> its share of the node */
	guint used_vcpus; /* sums over load, kept in step with it */
	guint used_memory_mib;
	guint reserved_ports; /* forwards of reservations: not in free_ports yet */
} PpnNode;

typedef struct _PpnNodes PpnNodes;

PpnNodes *ppn_nodes_new (guint timeout_seconds);
void ppn_nodes_free (PpnNodes *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnNodes, ppn_nodes_free)

void ppn_nodes_set_placement (PpnNodes *self, PpnPlacement strategy);
PpnNode *ppn_nodes_ensure (PpnNodes *self, const gchar *id);
PpnNode *ppn_nodes_lookup (PpnNodes *self, const gchar *id);
gboolean ppn_nodes_is_alive (PpnNodes *self, const PpnNode *node);
gboolean ppn_nodes_heartbeat (PpnNodes *self, const gchar *id, JsonObject *hb, GError **error);
PpnNode *ppn_nodes_place (PpnNodes *self, const PpnPlacementNeeds *needs, GError **error);
void ppn_nodes_reserve (PpnNode *node, const gchar *vm_id, guint vcpus, guint memory_mib, guint ports);
void ppn_nodes_release (PpnNode *node, const gchar *vm_id);
/* a call to the node's agent failed (it did not answer, or answered it
 * cannot): no more placements there until its next heartbeat */
void ppn_nodes_mark_unreachable (PpnNode *node, const GError *why);
guint ppn_nodes_count_vms (const PpnNode *node);
guint ppn_nodes_count_reserved (const PpnNode *node);
gboolean ppn_nodes_has_image (PpnNodes *self, const gchar *image);
JsonNode *ppn_nodes_images_to_json (PpnNodes *self);
JsonNode *ppn_nodes_to_json (PpnNodes *self);
/* for /metrics: nodes by state, capacity and load over the fleet */
void ppn_nodes_collect_metrics (PpnNodes *self, GString *out);

G_END_DECLS
