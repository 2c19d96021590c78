/* Placement over the nodes the fleet knows: which node a VM gets, what
 * counts against a node, and what a VM nobody can take is told. */
#include "config.h"

#include <string.h>

#include "ppn-error.h"
#include "ppn-json.h"
#include "ppn-nodes.h"

typedef struct {
	const gchar *accel;
	guint vcpus;
	guint memory_mib;
	guint free_ports;
	const gchar *libvirt; /* NULL: "ok" */
	const gchar *domains; /* the inside of the "domains" array, or NULL */
} Hb;

static gboolean
send_heartbeat (PpnNodes *nodes, const gchar *id, const Hb *hb, GError **error)
{
	g_autofree gchar *json = g_strdup_printf (
		"{\"node_id\":\"%s\",\"agent_url\":\"https://%s.example:9444\",\"accel\":\"%s\","
		"\"capacity\":{\"vcpus\":%u,\"memory_mib\":%u,\"free_ports\":%u},"
		"\"images\":[{\"name\":\"img\",\"description\":\"\"}],\"libvirt\":\"%s\",\"domains\":[%s]}",
		id, id, hb->accel != NULL ? hb->accel : "tcg", hb->vcpus, hb->memory_mib, hb->free_ports,
		hb->libvirt != NULL ? hb->libvirt : "ok", hb->domains != NULL ? hb->domains : "");
	g_autoptr(JsonNode) node = ppn_json_parse_object (json, strlen (json), 16, NULL);

	g_assert_nonnull (node);
	return ppn_nodes_heartbeat (nodes, id, json_node_get_object (node), error);
}

static void
heartbeat (PpnNodes *nodes, const gchar *id, const Hb *hb)
{
	g_autoptr(GError) error = NULL;

	send_heartbeat (nodes, id, hb, &error);
	g_assert_no_error (error);
}

/* a plain node: 4 vcpus, 4096 MiB, 10 free ports, tcg */
static void
plain (PpnNodes *nodes, const gchar *id)
{
	Hb hb = {.vcpus = 4, .memory_mib = 4096, .free_ports = 10};

	heartbeat (nodes, id, &hb);
}

static gchar *
domain (const gchar *vm_id, guint vcpus, guint memory_mib)
{
	return g_strdup_printf ("{\"vm_id\":\"%s\",\"tenant\":\"alice\",\"vcpus\":%u,\"memory_mib\":%u,"
				"\"state\":\"running\",\"port_forwards\":[]}",
				vm_id, vcpus, memory_mib);
}

/* the node chosen for @vcpus and @memory_mib, or NULL with @error */
static PpnNode *
place (PpnNodes *nodes, guint vcpus, guint memory_mib, GError **error)
{
	PpnPlacementNeeds needs = {"img", vcpus, memory_mib, 0, NULL};

	return ppn_nodes_place (nodes, &needs, error);
}

static const gchar *
place_id (PpnNodes *nodes, guint vcpus, guint memory_mib)
{
	g_autoptr(GError) error = NULL;
	PpnNode *node = place (nodes, vcpus, memory_mib, &error);

	g_assert_no_error (error);
	g_assert_nonnull (node);
	return node->id;
}

/* place and reserve, as the controller does for a create */
static const gchar *
place_reserve (PpnNodes *nodes, const gchar *vm_id, guint vcpus, guint memory_mib)
{
	g_autoptr(GError) error = NULL;
	PpnNode *node = place (nodes, vcpus, memory_mib, &error);

	g_assert_no_error (error);
	ppn_nodes_reserve (node, vm_id, vcpus, memory_mib, 0);
	return node->id;
}

static void
assert_no_capacity (PpnNodes *nodes, const PpnPlacementNeeds *needs, const gchar *says)
{
	g_autoptr(GError) error = NULL;

	g_assert_null (ppn_nodes_place (nodes, needs, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_NO_CAPACITY);
	g_test_message ("%s", error->message);
	if (strstr (error->message, says) == NULL)
		g_error ("expected a message with '%s', got '%s'", says, error->message);
}

/* a node takes VMs up to what it offers, and not one vcpu or MiB more */
static void
test_capacity (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	PpnPlacementNeeds big = {"img", 5, 64, 0, NULL};
	PpnPlacementNeeds more = {"img", 1, 1, 0, NULL};
	PpnNode *n1;

	plain (nodes, "n1");
	n1 = ppn_nodes_lookup (nodes, "n1");
	assert_no_capacity (nodes, &big, "large enough");
	ppn_nodes_reserve (n1, "vm-a", 3, 4000, 0);
	g_assert_cmpstr (place_id (nodes, 1, 96), ==, "n1");
	ppn_nodes_reserve (n1, "vm-b", 1, 96, 0);
	/* exactly full: 4 vcpus, 4096 MiB */
	g_assert_cmpuint (n1->used_vcpus, ==, 4);
	g_assert_cmpuint (n1->used_memory_mib, ==, 4096);
	assert_no_capacity (nodes, &more, "room");
}

/* a VM counts once: reserved, then reported, then gone */
static void
test_reservations (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	g_autofree gchar *dom_a = domain ("vm-a", 2, 1024);
	g_autofree gchar *dom_x = domain ("vm-x", 1, 512);
	g_autofree gchar *both = g_strconcat (dom_a, ",", dom_x, NULL);
	PpnNode *n1;

	plain (nodes, "n1");
	n1 = ppn_nodes_lookup (nodes, "n1");
	ppn_nodes_reserve (n1, "vm-a", 2, 1024, 1);
	g_assert_cmpuint (n1->used_vcpus, ==, 2);
	g_assert_cmpuint (ppn_nodes_count_reserved (n1), ==, 1);
	g_assert_cmpuint (n1->reserved_ports, ==, 1);
	/* reserving the same VM again changes nothing */
	ppn_nodes_reserve (n1, "vm-a", 2, 1024, 1);
	g_assert_cmpuint (n1->used_vcpus, ==, 2);

	/* the node reports it, and a VM the fleet did not place (vm-x):
	 * vm-a is counted once, its port is in the node's own count now */
	{
		Hb hb = {.vcpus = 4, .memory_mib = 4096, .free_ports = 9, .domains = both};
		heartbeat (nodes, "n1", &hb);
	}
	g_assert_cmpuint (ppn_nodes_count_vms (n1), ==, 2);
	g_assert_cmpuint (ppn_nodes_count_reserved (n1), ==, 0);
	g_assert_cmpuint (n1->used_vcpus, ==, 3);
	g_assert_cmpuint (n1->used_memory_mib, ==, 1536);
	g_assert_cmpuint (n1->reserved_ports, ==, 0);
	/* a reservation of a reported VM (adoption, a restart) is no second count */
	ppn_nodes_reserve (n1, "vm-x", 1, 512, 0);
	g_assert_cmpuint (n1->used_vcpus, ==, 3);

	/* a degraded node's empty list proves nothing: the load stays */
	{
		Hb hb = {.vcpus = 4, .memory_mib = 4096, .free_ports = 9, .libvirt = "unreachable"};
		g_test_expect_message ("ppn-fleet", G_LOG_LEVEL_WARNING, "*libvirt unreachable*");
		heartbeat (nodes, "n1", &hb);
		g_test_assert_expected_messages ();
	}
	g_assert_cmpuint (n1->used_vcpus, ==, 3);

	/* reported no more: gone, and its room free */
	{
		Hb hb = {.vcpus = 4, .memory_mib = 4096, .free_ports = 10, .domains = dom_x};
		heartbeat (nodes, "n1", &hb);
	}
	g_assert_cmpuint (ppn_nodes_count_vms (n1), ==, 1);
	g_assert_cmpuint (n1->used_vcpus, ==, 1);
	g_assert_cmpuint (n1->used_memory_mib, ==, 512);
}

/* a reservation the node has not reported yet survives its heartbeats
 * (the create is still on its way), and release frees it */
static void
test_release (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	PpnNode *n1;

	plain (nodes, "n1");
	n1 = ppn_nodes_lookup (nodes, "n1");
	g_assert_cmpstr (place_reserve (nodes, "vm-a", 4, 1024), ==, "n1");
	plain (nodes, "n1");
	g_assert_cmpuint (n1->used_vcpus, ==, 4);
	{
		PpnPlacementNeeds one = {"img", 1, 64, 0, NULL};
		assert_no_capacity (nodes, &one, "room");
	}
	ppn_nodes_release (n1, "vm-a");
	ppn_nodes_release (n1, "vm-never-placed");
	g_assert_cmpuint (n1->used_vcpus, ==, 0);
	g_assert_cmpuint (n1->used_memory_mib, ==, 0);
	g_assert_cmpuint (ppn_nodes_count_vms (n1), ==, 0);
	g_assert_cmpstr (place_id (nodes, 4, 1024), ==, "n1");
}

/* placement never reserves: a VM nobody can take leaves every node as it was */
static void
test_no_capacity_reserves_nothing (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	PpnPlacementNeeds huge = {"img", 4, 8192, 0, NULL};
	PpnNode *n1, *n2;

	plain (nodes, "n1");
	plain (nodes, "n2");
	n1 = ppn_nodes_lookup (nodes, "n1");
	n2 = ppn_nodes_lookup (nodes, "n2");
	ppn_nodes_reserve (n1, "vm-a", 1, 512, 0);
	assert_no_capacity (nodes, &huge, "large enough");
	g_assert_cmpuint (ppn_nodes_count_vms (n1), ==, 1);
	g_assert_cmpuint (n1->used_memory_mib, ==, 512);
	g_assert_cmpuint (ppn_nodes_count_vms (n2), ==, 0);
	g_assert_cmpuint (n2->used_memory_mib, ==, 0);
}

/* placed on only while its heartbeats come within node-timeout */
static void
test_dead_node (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (1);
	PpnPlacementNeeds one = {"img", 1, 64, 0, NULL};
	Hb small = {.vcpus = 1, .memory_mib = 128, .free_ports = 10};

	plain (nodes, "n1");
	heartbeat (nodes, "n2", &small);
	/* n1 is the emptier, until it falls silent */
	g_assert_cmpstr (place_id (nodes, 1, 64), ==, "n1");
	g_usleep (600 * 1000);
	heartbeat (nodes, "n2", &small);
	g_usleep (600 * 1000);
	g_assert_false (ppn_nodes_is_alive (nodes, ppn_nodes_lookup (nodes, "n1")));
	g_assert_cmpstr (place_id (nodes, 1, 64), ==, "n2");
	g_usleep (1100 * 1000);
	assert_no_capacity (nodes, &one, "alive");
	g_assert_false (ppn_nodes_has_image (nodes, "img"));
	/* back: placed on again */
	plain (nodes, "n1");
	g_assert_cmpstr (place_id (nodes, 1, 64), ==, "n1");
	/* a node never heard from is not placed on */
	ppn_nodes_ensure (nodes, "n4");
	g_assert_false (ppn_nodes_is_alive (nodes, ppn_nodes_lookup (nodes, "n4")));
}

/* a node whose libvirt is unreachable is alive but takes nothing */
static void
test_degraded (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	PpnPlacementNeeds one = {"img", 1, 64, 0, NULL};
	Hb down = {.vcpus = 64, .memory_mib = 65536, .free_ports = 100, .libvirt = "unreachable"};
	Hb up = {.vcpus = 64, .memory_mib = 65536, .free_ports = 100};

	g_test_expect_message ("ppn-fleet", G_LOG_LEVEL_MESSAGE, "node big is alive*");
	g_test_expect_message ("ppn-fleet", G_LOG_LEVEL_WARNING, "*libvirt unreachable*");
	heartbeat (nodes, "big", &down);
	g_test_assert_expected_messages ();
	assert_no_capacity (nodes, &one, "libvirt");
	plain (nodes, "small");
	g_assert_cmpstr (place_id (nodes, 1, 64), ==, "small");
	heartbeat (nodes, "big", &up);
	g_assert_cmpstr (place_id (nodes, 1, 64), ==, "big");
}

/* an agent that failed a call is not placed on until it heartbeats */
static void
test_unreachable (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	PpnPlacementNeeds one = {"img", 1, 64, 0, NULL};
	Hb up = {.vcpus = 64, .memory_mib = 65536, .free_ports = 100};
	g_autoptr(GError) why = g_error_new_literal (PPN_ERROR, PPN_ERROR_UNAVAILABLE, "connection refused");

	plain (nodes, "a");
	g_test_expect_message ("ppn-fleet", G_LOG_LEVEL_WARNING, "*node a*connection refused*next heartbeat*");
	ppn_nodes_mark_unreachable (ppn_nodes_lookup (nodes, "a"), why);
	g_test_assert_expected_messages ();
	assert_no_capacity (nodes, &one, "agents failed a call");
	plain (nodes, "b");
	g_assert_cmpstr (place_id (nodes, 1, 64), ==, "b");
	g_test_expect_message ("ppn-fleet", G_LOG_LEVEL_MESSAGE, "*node a heartbeats again*");
	heartbeat (nodes, "a", &up);
	g_test_assert_expected_messages ();
	g_assert_cmpstr (place_id (nodes, 1, 64), ==, "a");
}

/* spread: the emptiest node (the most free share of its scarcer
 * resource), then the fewest VMs, then the node id */
static void
test_spread (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	Hb large = {.vcpus = 8, .memory_mib = 8192, .free_ports = 10};
	Hb roomy = {.vcpus = 8, .memory_mib = 65536, .free_ports = 10};
	g_autoptr(GHashTable) count = g_hash_table_new (g_str_hash, g_str_equal);
	static const gchar *const turns[] = {"n1", "n2", "n3"};

	/* three equal nodes take turns, whatever the hash order */
	plain (nodes, "n1");
	plain (nodes, "n2");
	plain (nodes, "n3");
	for (guint i = 0; i < 9; i++) {
		g_autofree gchar *vm = g_strdup_printf ("vm-%u", i);
		const gchar *id = place_reserve (nodes, vm, 1, 256);
		g_hash_table_insert (count, (gpointer)id,
				     GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (count, id)) + 1));
		/* ties go to the lowest id: n1, n2, n3, n1, ... */
		g_assert_cmpstr (id, ==, turns[i % 3]);
	}
	g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (count, "n1")), ==, 3);
	g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (count, "n2")), ==, 3);
	g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (count, "n3")), ==, 3);

	/* a larger node is the emptiest by share until it is as full */
	heartbeat (nodes, "n0", &large);
	g_assert_cmpstr (place_reserve (nodes, "vm-l1", 1, 256), ==, "n0");
	g_assert_cmpstr (place_reserve (nodes, "vm-l2", 1, 256), ==, "n0");
	g_assert_cmpstr (place_reserve (nodes, "vm-l3", 1, 256), ==, "n0");
	g_assert_cmpstr (place_reserve (nodes, "vm-l4", 1, 256), ==, "n0");
	/* n0: 4/8 vcpus used, left 3/8 after one more; n1: 3/4 used, left 0:
	 * n0 again; its share is the smaller of cpu and memory left */
	g_assert_cmpstr (place_id (nodes, 1, 256), ==, "n0");

	/* memory to spare does not hide a lack of vcpus: n9 would have 1/8
	 * of its vcpus left, n0 3/8 */
	heartbeat (nodes, "n9", &roomy);
	ppn_nodes_reserve (ppn_nodes_lookup (nodes, "n9"), "vm-big", 6, 256, 0);
	g_assert_cmpstr (place_id (nodes, 1, 256), ==, "n0");
}

/* spread, the same share left: the node with fewer VMs, whatever its id */
static void
test_spread_fewer_vms (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	Hb four = {.vcpus = 4, .memory_mib = 65536, .free_ports = 10};
	Hb eight = {.vcpus = 8, .memory_mib = 65536, .free_ports = 10};
	PpnNode *few, *many;

	heartbeat (nodes, "z-few", &four);
	heartbeat (nodes, "a-many", &eight);
	few = ppn_nodes_lookup (nodes, "z-few");
	many = ppn_nodes_lookup (nodes, "a-many");
	ppn_nodes_reserve (few, "vm-0", 2, 256, 0);
	for (guint i = 1; i <= 5; i++) {
		g_autofree gchar *vm = g_strdup_printf ("vm-%u", i);
		ppn_nodes_reserve (many, vm, 1, 256, 0);
	}
	/* after one more: 1/4 of z-few's vcpus, 2/8 of a-many's */
	g_assert_cmpstr (place_id (nodes, 1, 256), ==, "z-few");
	ppn_nodes_set_placement (nodes, PPN_PLACEMENT_PACK);
	g_assert_cmpstr (place_id (nodes, 1, 256), ==, "a-many");
}

/* pack: the fullest node that fits, so the others stay empty */
static void
test_pack (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);

	ppn_nodes_set_placement (nodes, PPN_PLACEMENT_PACK);
	plain (nodes, "n1");
	plain (nodes, "n2");
	/* a tie: the lowest id */
	g_assert_cmpstr (place_reserve (nodes, "vm-1", 1, 1024), ==, "n1");
	for (guint i = 2; i <= 4; i++) {
		g_autofree gchar *vm = g_strdup_printf ("vm-%u", i);
		g_assert_cmpstr (place_reserve (nodes, vm, 1, 1024), ==, "n1");
	}
	/* n1 is full: the next goes to n2, and stays there */
	g_assert_cmpstr (place_reserve (nodes, "vm-5", 1, 1024), ==, "n2");
	g_assert_cmpstr (place_reserve (nodes, "vm-6", 1, 1024), ==, "n2");
	/* freed room on n1 makes it no fuller than n2: n2 is the fuller */
	ppn_nodes_release (ppn_nodes_lookup (nodes, "n1"), "vm-1");
	ppn_nodes_release (ppn_nodes_lookup (nodes, "n1"), "vm-2");
	ppn_nodes_release (ppn_nodes_lookup (nodes, "n1"), "vm-3");
	g_assert_cmpstr (place_id (nodes, 1, 1024), ==, "n2");
	/* a VM only the emptier fits goes there */
	g_assert_cmpstr (place_id (nodes, 3, 1024), ==, "n1");
}

static void
test_strategy_names (void)
{
	PpnPlacement p = PPN_PLACEMENT_SPREAD;

	g_assert_true (ppn_placement_from_string ("pack", &p));
	g_assert_cmpint (p, ==, PPN_PLACEMENT_PACK);
	g_assert_cmpstr (ppn_placement_to_string (p), ==, "pack");
	g_assert_true (ppn_placement_from_string ("spread", &p));
	g_assert_cmpint (p, ==, PPN_PLACEMENT_SPREAD);
	g_assert_cmpstr (ppn_placement_to_string (p), ==, "spread");
	g_assert_false (ppn_placement_from_string ("Spread", &p));
	g_assert_false (ppn_placement_from_string (NULL, &p));
}

/* "accel": only a node with that accelerator; nobody has it: said so */
static void
test_accel (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	PpnPlacementNeeds kvm = {"img", 1, 64, 0, "kvm"};
	PpnPlacementNeeds tcg = {"img", 1, 64, 0, "tcg"};
	Hb big_tcg = {.vcpus = 64, .memory_mib = 65536, .free_ports = 100};
	Hb small_kvm = {.accel = "kvm", .vcpus = 2, .memory_mib = 1024, .free_ports = 10};
	Hb bad = {.accel = "xen", .vcpus = 2, .memory_mib = 1024, .free_ports = 10};
	g_autoptr(GError) error = NULL;
	PpnNode *node;

	heartbeat (nodes, "tcg1", &big_tcg);
	assert_no_capacity (nodes, &kvm, "'accel'");
	heartbeat (nodes, "kvm1", &small_kvm);
	node = ppn_nodes_place (nodes, &kvm, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (node->id, ==, "kvm1");
	node = ppn_nodes_place (nodes, &tcg, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (node->id, ==, "tcg1");
	/* without a requirement the emptiest wins */
	g_assert_cmpstr (place_id (nodes, 1, 64), ==, "tcg1");
	/* full kvm node: it is room that lacks now, not the accelerator */
	ppn_nodes_reserve (ppn_nodes_lookup (nodes, "kvm1"), "vm-k", 2, 64, 0);
	assert_no_capacity (nodes, &kvm, "room");

	/* a node may only say kvm or tcg */
	g_assert_false (send_heartbeat (nodes, "x1", &bad, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
}

/* one free host port per forward, reservations' forwards counted */
static void
test_ports (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	Hb few = {.vcpus = 64, .memory_mib = 65536, .free_ports = 2};
	PpnPlacementNeeds two = {"img", 1, 64, 2, NULL};
	PpnPlacementNeeds three = {"img", 1, 64, 3, NULL};
	g_autoptr(GError) error = NULL;
	PpnNode *node;

	heartbeat (nodes, "few", &few);
	plain (nodes, "many"); /* 10 ports, a smaller node */
	/* spread would pick "few", which lacks the ports */
	node = ppn_nodes_place (nodes, &three, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (node->id, ==, "many");
	node = ppn_nodes_place (nodes, &two, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (node->id, ==, "few");
	ppn_nodes_reserve (node, "vm-a", 1, 64, 2);
	/* its two ports are on their way to vm-a */
	node = ppn_nodes_place (nodes, &two, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (node->id, ==, "many");
	ppn_nodes_reserve (node, "vm-b", 1, 64, 9);
	assert_no_capacity (nodes, &two, "host ports");
}

/* a heartbeat with a malformed domain is refused whole: nothing changes */
static void
test_bad_heartbeat (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	g_autoptr(GError) error = NULL;
	Hb bad = {.vcpus = 4, .memory_mib = 4096, .free_ports = 10,
		  .domains = "{\"vm_id\":\"vm-a\",\"tenant\":\"alice\",\"vcpus\":-1}"};
	PpnNode *n1;

	plain (nodes, "n1");
	n1 = ppn_nodes_lookup (nodes, "n1");
	ppn_nodes_reserve (n1, "vm-a", 1, 256, 0);
	g_assert_false (send_heartbeat (nodes, "n1", &bad, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
	g_assert_nonnull (strstr (error->message, "domains[0]"));
	g_assert_cmpuint (ppn_nodes_count_reserved (n1), ==, 1);
	g_assert_cmpuint (n1->used_vcpus, ==, 1);
}

/* a node's identity is its certificate's, and its address its own */
static void
test_identity (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	g_autoptr(GError) error = NULL;
	const gchar *json = "{\"node_id\":\"n5\",\"agent_url\":\"https://n1.example:9444\",\"accel\":\"tcg\","
			    "\"capacity\":{\"vcpus\":4,\"memory_mib\":4096,\"free_ports\":10},\"domains\":[]}";
	g_autoptr(JsonNode) same_address = ppn_json_parse_object (json, strlen (json), 16, NULL);

	plain (nodes, "n1");
	/* the certificate says n2, the heartbeat n1 */
	{
		g_autofree gchar *body = g_strdup ("{\"node_id\":\"n1\",\"agent_url\":\"https://n2.example:9444\","
						   "\"accel\":\"tcg\",\"capacity\":{\"vcpus\":4,\"memory_mib\":4096,"
						   "\"free_ports\":10},\"domains\":[]}");
		g_autoptr(JsonNode) node = ppn_json_parse_object (body, strlen (body), 16, NULL);
		g_assert_false (ppn_nodes_heartbeat (nodes, "n2", json_node_get_object (node), &error));
		g_assert_error (error, PPN_ERROR, PPN_ERROR_FORBIDDEN);
		g_clear_error (&error);
		g_assert_null (ppn_nodes_lookup (nodes, "n2"));
	}
	/* a second live node at the address of n1 */
	g_assert_false (ppn_nodes_heartbeat (nodes, "n5", json_node_get_object (same_address), &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_CONFLICT);
	g_assert_null (ppn_nodes_lookup (nodes, "n5"));
}

/* the operators' view */
static void
test_to_json (void)
{
	g_autoptr(PpnNodes) nodes = ppn_nodes_new (15);
	g_autofree gchar *dom = domain ("vm-a", 2, 1024);
	Hb hb = {.vcpus = 4, .memory_mib = 4096, .free_ports = 9, .domains = dom};
	g_autoptr(JsonNode) json = NULL;
	JsonArray *list;
	JsonObject *n1, *n2;

	heartbeat (nodes, "n1", &hb);
	ppn_nodes_reserve (ppn_nodes_lookup (nodes, "n1"), "vm-b", 1, 256, 2);
	ppn_nodes_ensure (nodes, "n2"); /* known from a record only */
	json = ppn_nodes_to_json (nodes);
	list = json_object_get_array_member (json_node_get_object (json), "nodes");
	g_assert_cmpuint (json_array_get_length (list), ==, 2);
	n1 = json_array_get_object_element (list, 0);
	g_assert_cmpstr (json_object_get_string_member (n1, "id"), ==, "n1");
	g_assert_cmpstr (json_object_get_string_member (n1, "state"), ==, "alive");
	g_assert_true (json_object_get_boolean_member (n1, "alive"));
	g_assert_false (json_object_get_boolean_member (n1, "degraded"));
	g_assert_cmpstr (json_object_get_string_member (n1, "accel"), ==, "tcg");
	g_assert_cmpint (json_object_get_int_member (n1, "heartbeat_age_ms"), <, 5000);
	g_assert_cmpint (json_object_get_int_member (n1, "vcpus"), ==, 4);
	g_assert_cmpint (json_object_get_int_member (n1, "used_vcpus"), ==, 3);
	g_assert_cmpint (json_object_get_int_member (n1, "memory_mib"), ==, 4096);
	g_assert_cmpint (json_object_get_int_member (n1, "used_memory_mib"), ==, 1280);
	g_assert_cmpint (json_object_get_int_member (n1, "vms"), ==, 2);
	g_assert_cmpint (json_object_get_int_member (n1, "reserved"), ==, 1);
	g_assert_cmpint (json_object_get_int_member (n1, "free_ports"), ==, 7);
	g_assert_cmpstr (json_array_get_string_element (json_object_get_array_member (n1, "images"), 0), ==, "img");
	n2 = json_array_get_object_element (list, 1);
	g_assert_cmpstr (json_object_get_string_member (n2, "state"), ==, "silent");
	g_assert_true (json_object_get_null_member (n2, "heartbeat_age_ms"));
	g_assert_true (json_object_get_null_member (n2, "accel"));
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/placement/capacity", test_capacity);
	g_test_add_func ("/placement/reservations", test_reservations);
	g_test_add_func ("/placement/release", test_release);
	g_test_add_func ("/placement/no-capacity-reserves-nothing", test_no_capacity_reserves_nothing);
	g_test_add_func ("/placement/dead-node", test_dead_node);
	g_test_add_func ("/placement/degraded", test_degraded);
	g_test_add_func ("/placement/unreachable", test_unreachable);
	g_test_add_func ("/placement/spread", test_spread);
	g_test_add_func ("/placement/spread-fewer-vms", test_spread_fewer_vms);
	g_test_add_func ("/placement/pack", test_pack);
	g_test_add_func ("/placement/strategy-names", test_strategy_names);
	g_test_add_func ("/placement/accel", test_accel);
	g_test_add_func ("/placement/ports", test_ports);
	g_test_add_func ("/placement/bad-heartbeat", test_bad_heartbeat);
	g_test_add_func ("/placement/identity", test_identity);
	g_test_add_func ("/placement/to-json", test_to_json);
	return g_test_run ();
}
