/* bench-quota: the quota gate under a flood.
 *
 * A fleet on libvirt's test driver; tenant A has max-vms 5. Each round
 * fires 200 creates of A at once (200 connections), counts the answers
 * (201 must be exactly 5), checks the node holds exactly 5 of A's
 * domains, then deletes them. Meanwhile, and again without the flood,
 * tenant B creates and deletes one VM at a time: its median create
 * latency is the reference.
 *
 *   tools/bench/bench-quota [-r ROUNDS] [-p PARALLEL]
 */
#include "config.h"

#include <string.h>

#include "bench-util.h"

static gint rounds = 20;
static gint parallel = 200;

static gdouble
median (GArray *v)
{
	return ppn_bench_percentile (v, 0.5);
}

/* one create and delete of B, timed */
static gdouble
b_create (PpnTestFleet *fleet, guint i)
{
	g_autofree gchar *body = g_strdup_printf ("{\"name\":\"b%u\",\"image\":\"test-guest\",\"memory_mib\":64}", i);
	guint status = 0;
	gint64 t0 = g_get_monotonic_time ();
	g_autoptr(JsonNode) vm = ppn_test_fleet_call (fleet, fleet->token2, "POST", "/v1/vms", body, &status, NULL);
	gdouble ms = (g_get_monotonic_time () - t0) / 1000.0;
	g_autofree gchar *path = NULL;

	if (status != 201)
		g_error ("B's create failed: %u", status);
	path = g_strconcat ("/v1/vms/", json_object_get_string_member (json_node_get_object (vm), "id"), NULL);
	g_clear_pointer (&vm, json_node_unref);
	vm = ppn_test_fleet_call (fleet, fleet->token2, "DELETE", path, NULL, &status, NULL);
	return ms;
}

int
main (int argc, char **argv)
{
	const GOptionEntry entries[] = {
		{"rounds", 'r', 0, G_OPTION_ARG_INT, &rounds, "Rounds (default 20)", "N"},
		{"parallel", 'p', 0, G_OPTION_ARG_INT, &parallel, "Creates fired at once per round (default 200)", "N"},
		{NULL},
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new (NULL);
	g_autoptr(GError) error = NULL;
	PpnTestFleetOptions opts = {.libvirt_uri = "test:///default", .max_vms = 5};
	g_autoptr(PpnTestFleet) fleet = NULL;
	g_autoptr(GArray) b_quiet = g_array_new (FALSE, FALSE, sizeof (gdouble));
	g_autoptr(GArray) b_flood = g_array_new (FALSE, FALSE, sizeof (gdouble));
	gboolean all_exact = TRUE;

	g_option_context_add_main_entries (ctx, entries, NULL);
	if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
		g_printerr ("bench-quota: %s\n", error->message);
		return 2;
	}
	fleet = ppn_test_fleet_new (&opts, &error);
	if (fleet == NULL || !ppn_test_fleet_start (fleet, &error)) {
		g_printerr ("bench-quota: %s\n", error->message);
		return 1;
	}

	for (guint i = 0; i < 20; i++) {
		gdouble ms = b_create (fleet, i);
		g_array_append_val (b_quiet, ms);
	}

	ppn_bench_print_machine ();
	g_print ("tenant A max-vms 5, %d creates at once per round, %d rounds\n",
		 parallel, rounds);
	g_print ("%6s %6s %6s %6s %6s %14s\n", "round", "201", "403", "429", "other", "A's domains");
	for (gint round = 0; round < rounds; round++) {
		g_autofree gchar *prefix = g_strdup_printf ("a%d-", round);
		g_autoptr(PpnTestBurst) burst = ppn_test_burst_start (fleet, fleet->token1, prefix, (guint)parallel);
		guint on_node;

		/* B keeps creating while A's flood is answered */
		for (guint i = 0; !ppn_test_burst_finished (burst); i++) {
			gdouble ms = b_create (fleet, 100 + round * 1000 + i);
			g_array_append_val (b_flood, ms);
		}
		ppn_test_burst_join (burst);
		on_node = ppn_test_node_domains_of (fleet, "alice");
		g_print ("%6d %6u %6u %6u %6u %14u\n", round, burst->created, burst->quota, burst->too_many, burst->other,
			 on_node);
		if (burst->created != 5 || on_node != 5)
			all_exact = FALSE;
		for (guint i = 0; i < burst->ids->len; i++) {
			g_autofree gchar *path = g_strconcat ("/v1/vms/", (const gchar *)g_ptr_array_index (burst->ids, i), NULL);
			guint status = 0;
			g_autoptr(JsonNode) d = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		}
	}
	g_print ("\nexactly 5 successes and 5 domains in every round: %s\n", all_exact ? "yes" : "NO");
	g_print ("%-40s %10s %6s\n", "B's create latency", "median ms", "n");
	g_print ("%-40s %10.1f %6u\n", "without A flooding", median (b_quiet), b_quiet->len);
	g_print ("%-40s %10.1f %6u\n", "while A floods", median (b_flood), b_flood->len);
	g_print ("%-40s %10.2f\n", "ratio", median (b_flood) / median (b_quiet));
	ppn_bench_print_load ("at the end");
	return all_exact ? 0 : 1;
}
