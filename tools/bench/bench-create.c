/* bench-create: what ppn adds to starting a VM.
 *
 * Starts a fleet (ppn-fleetd + one ppn-agentd on qemu:///system, TCG)
 * from the build tree, then N times: POST /v1/vms -> 201, and on to the
 * guest answering on its forwarded port; DELETE. As the reference, the
 * very domain XML ppn generated (taken with virsh dumpxml, renamed) is
 * started N times with `virsh create`, timed to its return and to the
 * guest answering. Prints medians and p95 side by side.
 *
 *   tools/bench/bench-create [-n RUNS]
 */
#include "config.h"

#include <gio/gio.h>
#include <string.h>
#include <sys/utsname.h>

#include "ppn-test-util.h"

static gint runs = 20;

static gint
cmp_double (gconstpointer a, gconstpointer b)
{
	gdouble x = *(const gdouble *)a, y = *(const gdouble *)b;
	return x < y ? -1 : x > y;
}

static gdouble
percentile (GArray *v, gdouble p)
{
	guint idx;

	g_array_sort (v, cmp_double);
	idx = (guint)MIN (v->len - 1, (guint)(p * (v->len - 1) + 0.5));
	return g_array_index (v, gdouble, idx);
}

/* ms from @t0 until GET / on @port answers @expect */
static gdouble
wait_answer (guint16 port, const gchar *expect, gint64 t0)
{
	while (g_get_monotonic_time () - t0 < 180 * G_USEC_PER_SEC) {
		g_autofree gchar *got = ppn_test_http_get (port, NULL);
		if (g_strcmp0 (got, expect) == 0)
			return (g_get_monotonic_time () - t0) / 1000.0;
		g_usleep (20000);
	}
	g_error ("guest %s on port %u did not answer", expect, port);
	return 0;
}

static gchar *
run (const gchar *const *argv)
{
	gint status = -1;
	g_autofree gchar *out = ppn_test_run (argv, &status);

	if (!g_spawn_check_wait_status (status, NULL))
		g_error ("%s failed", argv[0]);
	return g_steal_pointer (&out);
}

static gchar *
replace_all (const gchar *s, const gchar *from, const gchar *to)
{
	g_auto(GStrv) parts = g_strsplit (s, from, -1);
	return g_strjoinv (to, parts);
}

/* the generated XML, made into another domain: new name and vm id, a
 * different host port, no uuid (libvirt picks one) */
static gchar *
reference_xml (const gchar *xml, const gchar *id, const gchar *new_id, guint16 port, guint16 new_port)
{
	g_autofree gchar *a = replace_all (xml, id, new_id);
	g_autofree gchar *from = g_strdup_printf ("127.0.0.1:%u-", port);
	g_autofree gchar *to = g_strdup_printf ("127.0.0.1:%u-", new_port);
	g_autofree gchar *b = replace_all (a, from, to);
	const gchar *u0 = strstr (b, "<uuid>");
	const gchar *u1 = u0 != NULL ? strstr (u0, "</uuid>") : NULL;
	GString *out = g_string_new (NULL);

	if (u0 == NULL || u1 == NULL)
		return g_strdup (b);
	g_string_append_len (out, b, u0 - b);
	g_string_append (out, u1 + strlen ("</uuid>"));
	return g_string_free (out, FALSE);
}

static void
machine (void)
{
	struct utsname u;
	g_autofree gchar *cpuinfo = NULL;
	const gchar *model = NULL;

	uname (&u);
	if (g_file_get_contents ("/proc/cpuinfo", &cpuinfo, NULL, NULL))
		model = strstr (cpuinfo, "model name");
	g_print ("machine: %s %s, %u cpus, %.*s\n", u.sysname, u.release, g_get_num_processors (),
		 model != NULL ? (int)(strchr (model, '\n') - model) : 0, model != NULL ? model : "");
	g_print ("guest: test-guest (Debian cloud kernel + busybox), TCG, 1 vCPU, 256 MiB\n\n");
}

int
main (int argc, char **argv)
{
	const GOptionEntry entries[] = {
		{"runs", 'n', 0, G_OPTION_ARG_INT, &runs, "Runs of each (default 20)", "N"},
		{NULL},
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new (NULL);
	g_autoptr(GError) error = NULL;
	PpnTestFleetOptions opts = {.libvirt_uri = "qemu:///system", .real_guest = TRUE, .max_vms = 1000};
	g_autoptr(PpnTestFleet) fleet = NULL;
	g_autoptr(GArray) api_201 = g_array_new (FALSE, FALSE, sizeof (gdouble));
	g_autoptr(GArray) api_answer = g_array_new (FALSE, FALSE, sizeof (gdouble));
	g_autoptr(GArray) virsh_ret = g_array_new (FALSE, FALSE, sizeof (gdouble));
	g_autoptr(GArray) virsh_answer = g_array_new (FALSE, FALSE, sizeof (gdouble));
	g_autofree gchar *xml = NULL;
	g_autofree gchar *xml_id = NULL;
	guint16 xml_port = 0;

	g_option_context_add_main_entries (ctx, entries, NULL);
	if (!g_option_context_parse (ctx, &argc, &argv, &error) || runs < 1) {
		g_printerr ("bench-create: %s\n", error != NULL ? error->message : "bad --runs");
		return 2;
	}
	if (!ppn_test_libvirt_available ("qemu:///system")) {
		g_printerr ("bench-create: qemu:///system is not reachable (start libvirtd)\n");
		return 1;
	}
	machine ();
	fleet = ppn_test_fleet_new (&opts, &error);
	if (fleet == NULL || !ppn_test_fleet_start (fleet, &error)) {
		g_printerr ("bench-create: %s\n", error->message);
		return 1;
	}

	for (gint i = 0; i < runs; i++) {
		g_autofree gchar *name = g_strdup_printf ("bench%d", i);
		g_autofree gchar *body = g_strdup_printf (
			"{\"name\":\"%s\",\"image\":\"test-guest\",\"vcpus\":1,\"memory_mib\":256,"
			"\"port_forwards\":[{\"guest_port\":80}]}",
			name);
		g_autofree gchar *raw = NULL;
		g_autofree gchar *path = NULL;
		guint status = 0;
		gint64 t0 = g_get_monotonic_time ();
		g_autoptr(JsonNode) vm = ppn_test_fleet_call (fleet, fleet->token1, "POST", "/v1/vms", body, &status, &raw);
		gdouble t201 = (g_get_monotonic_time () - t0) / 1000.0, tans;
		JsonObject *o;
		const gchar *id;
		guint16 port;

		if (status != 201)
			g_error ("create: %u %s", status, raw);
		o = json_node_get_object (vm);
		id = json_object_get_string_member (o, "id");
		port = (guint16)json_object_get_int_member (
			json_array_get_object_element (json_object_get_array_member (o, "port_forwards"), 0), "host_port");
		tans = wait_answer (port, id, t0);
		g_array_append_val (api_201, t201);
		g_array_append_val (api_answer, tans);
		if (xml == NULL) {
			g_autofree gchar *dom = g_strconcat ("ppn-", id, NULL);
			const gchar *argv_dump[] = {"virsh", "-c", "qemu:///system", "dumpxml", "--inactive", dom, NULL};
			xml = run (argv_dump);
			xml_id = g_strdup (id);
			xml_port = port;
		}
		path = g_strconcat ("/v1/vms/", id, NULL);
		g_clear_pointer (&vm, json_node_unref);
		vm = ppn_test_fleet_call (fleet, fleet->token1, "DELETE", path, NULL, &status, NULL);
		if (status != 204)
			g_error ("delete: %u", status);
		g_printerr ("api run %d: 201 after %.0f ms, answer after %.0f ms\n", i, t201, tans);
	}

	for (gint i = 0; i < runs; i++) {
		g_autofree gchar *new_id = g_strdup_printf ("%016x", 0xbe0c0000u + (guint)i);
		guint16 new_port = (guint16)(fleet->port_last - 1);
		g_autofree gchar *ref = reference_xml (xml, xml_id, new_id, xml_port, new_port);
		g_autofree gchar *file = g_build_filename (fleet->dir, "reference.xml", NULL);
		g_autofree gchar *dom = g_strconcat ("ppn-", new_id, NULL);
		const gchar *argv_create[] = {"virsh", "-q", "-c", "qemu:///system", "create", file, NULL};
		const gchar *argv_destroy[] = {"virsh", "-q", "-c", "qemu:///system", "destroy", dom, NULL};
		g_autofree gchar *out = NULL;
		g_autofree gchar *out2 = NULL;
		gint64 t0;
		gdouble tret, tans;

		g_file_set_contents (file, ref, -1, &error);
		g_assert_no_error (error);
		t0 = g_get_monotonic_time ();
		out = run (argv_create);
		tret = (g_get_monotonic_time () - t0) / 1000.0;
		tans = wait_answer (new_port, new_id, t0);
		g_array_append_val (virsh_ret, tret);
		g_array_append_val (virsh_answer, tans);
		out2 = run (argv_destroy);
		g_printerr ("virsh run %d: returned after %.0f ms, answer after %.0f ms\n", i, tret, tans);
	}

	g_print ("%-34s %10s %10s %10s %10s %8s\n", "step (ms, n runs each)", "ppn med", "ppn p95", "virsh med",
		 "virsh p95", "ratio");
	{
		gdouble a = percentile (api_201, 0.5), b = percentile (virsh_ret, 0.5);
		g_print ("%-34s %10.0f %10.0f %10.0f %10.0f %8.2f\n", "POST /v1/vms -> 201 | virsh create", a,
			 percentile (api_201, 0.95), b, percentile (virsh_ret, 0.95), a / b);
		a = percentile (api_answer, 0.5);
		b = percentile (virsh_answer, 0.5);
		g_print ("%-34s %10.0f %10.0f %10.0f %10.0f %8.2f\n", "... -> guest answers on its port", a,
			 percentile (api_answer, 0.95), b, percentile (virsh_answer, 0.95), a / b);
	}
	g_print ("runs: %d of each\n", runs);
	return 0;
}
