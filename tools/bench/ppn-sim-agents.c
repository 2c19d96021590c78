/* ppn-sim-agents: K simulated nodes in one process, for bench-scale.
 *
 * Each is a real ppn agent (PpnAgent from libppn-agent: domain manager,
 * agent API server, heartbeat) with its own node id (simNNNN), its own
 * agent certificate issued by the fleet CA, its own ephemeral listen
 * port, all in one GMainLoop. Each agent has a private libvirt test
 * driver, test:///DIR/nodes/simNNNN.xml: the test driver shares one
 * state between all connections to test:///default in a process, and
 * every agent would then list every agent's domains at each heartbeat
 * (it reports only its own, by their metadata, but reads them all). The
 * node file holds --vms running domains, each with the XML the agent
 * itself generates (ppn_domain_xml_build) for VM record number
 * node * vms + k, as bench-scale's fleet.db has it (tenant t(i % 1000),
 * host port first-port + k), so the heartbeats echo the records and the
 * reconciliation finds them running.
 *
 * Each heartbeat's round trip (POST /mesh/v1/heartbeat, queued to
 * answered, TLS handshake included) is timed through emission hooks on
 * every SoupSession of the process. SIGUSR1 starts a new window;
 * SIGUSR2 writes the window's samples (ms, one a line; a failed one as
 * -1) to DIR/rtt-FIRST.txt; SIGTERM stops.
 *
 *   ppn-sim-agents --dir DIR --ca-dir CA --fleet-url URL --image-dir IMG
 *                  [--first N] [--count K] [--vms V] [--interval S]
 */
#include "config.h"

#define G_LOG_DOMAIN "ppn-sim"

#include <glib-unix.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <stdio.h>
#include <string.h>

#include "ppn-agent.h"
#include "ppn-domain-xml.h"
#include "ppn-forward.h"
#include "ppn-tls.h"

static gchar *dir = NULL;
static gchar *ca_dir = NULL;
static gchar *fleet_url = NULL;
static gchar *image_dir = NULL;
static gint first = 0;
static gint count = 1;
static gint vms = 100;
static gint interval = 5;
static gint port_first = 40000;
static gint stagger_ms = -1;

static GMainLoop *loop = NULL;
static GArray *samples = NULL; /* gdouble ms, -1 for a failure */

#define SIM_T0_KEY "ppn-sim-t0"

static gboolean
sim_queued_hook (GSignalInvocationHint *hint, guint n, const GValue *values, gpointer user_data)
{
	SoupMessage *msg = g_value_get_object (&values[1]);
	gint64 *t0 = g_new (gint64, 1);

	*t0 = g_get_monotonic_time ();
	g_object_set_data_full (G_OBJECT (msg), SIM_T0_KEY, t0, g_free);
	return TRUE;
}

static gboolean
sim_unqueued_hook (GSignalInvocationHint *hint, guint n, const GValue *values, gpointer user_data)
{
	SoupMessage *msg = g_value_get_object (&values[1]);
	gint64 *t0 = g_object_get_data (G_OBJECT (msg), SIM_T0_KEY);
	gdouble ms;

	if (t0 == NULL ||
	    !g_str_has_suffix (g_uri_get_path (soup_message_get_uri (msg)), "/mesh/v1/heartbeat"))
		return TRUE;
	ms = soup_message_get_status (msg) == SOUP_STATUS_OK ? (g_get_monotonic_time () - *t0) / 1000.0 : -1;
	g_array_append_val (samples, ms);
	return TRUE;
}

static gboolean
sim_reset_cb (gpointer user_data)
{
	g_array_set_size (samples, 0);
	return G_SOURCE_CONTINUE;
}

static gboolean
sim_dump_cb (gpointer user_data)
{
	g_autofree gchar *path = g_strdup_printf ("%s/rtt-%d.txt", dir, first);
	g_autofree gchar *tmp = g_strconcat (path, ".tmp", NULL);
	FILE *f = fopen (tmp, "w");

	if (f == NULL)
		return G_SOURCE_CONTINUE;
	for (guint i = 0; i < samples->len; i++)
		fprintf (f, "%.3f\n", g_array_index (samples, gdouble, i));
	fclose (f);
	g_rename (tmp, path);
	return G_SOURCE_CONTINUE;
}

static gboolean
sim_quit_cb (gpointer user_data)
{
	g_main_loop_quit (loop);
	return G_SOURCE_REMOVE;
}

/* the node's test driver file: its CPU and memory, and its domains */
static gboolean
sim_write_node (const gchar *path, const gchar *node_id, guint node, GError **error)
{
	g_autoptr (GString) out = g_string_new (NULL);
	g_autofree gchar *kernel = g_build_filename (image_dir, "test-guest", "vmlinuz", NULL);
	g_autofree gchar *initrd = g_build_filename (image_dir, "test-guest", "initrd.img", NULL);

	g_string_append (out, "<node>\n  <cpu><mhz>2000</mhz><model>sim</model><active>128</active>"
			      "<total>128</total><nodes>1</nodes><sockets>1</sockets><cores>64</cores>"
			      "<threads>2</threads></cpu>\n  <memory>67108864</memory>\n");
	for (guint k = 0; k < (guint)vms; k++) {
		guint i = node * (guint)vms + k;
		g_autoptr (PpnDomainSpec) spec = ppn_domain_spec_new ();
		PpnForward *fwd = ppn_forward_new (80, "tcp");
		g_autofree gchar *xml = NULL;
		const gchar *body;

		spec->vm_id = g_strdup_printf ("%016x", 0x10000000u + i);
		spec->tenant = g_strdup_printf ("t%u", i % 1000);
		spec->name = g_strdup_printf ("vm%u", i);
		spec->image = g_strdup ("test-guest");
		spec->node = g_strdup (node_id);
		spec->created = g_strdup ("2026-01-01T00:00:00Z");
		spec->accel = g_strdup ("tcg");
		spec->egress = g_strdup ("nat");
		spec->vcpus = 1;
		spec->memory_mib = 256;
		spec->kernel = g_strdup (kernel);
		spec->initrd = g_strdup (initrd);
		spec->cmdline = g_strdup ("console=ttyS0");
		spec->console_path =
		    g_strdup_printf ("%s/state/%s/console-%s.log", dir, node_id, spec->vm_id);
		fwd->host_address = g_strdup ("127.0.0.1");
		fwd->host_port = (guint16)(port_first + (gint)k);
		g_ptr_array_add (spec->forwards, fwd);
		xml = ppn_domain_xml_build (spec, error);
		if (xml == NULL)
			return FALSE;
		/* no XML declaration inside the node document */
		body = g_str_has_prefix (xml, "<?xml") ? strchr (xml, '\n') + 1 : xml;
		g_string_append (out, body);
	}
	g_string_append (out, "</node>\n");
	return g_file_set_contents (path, out->str, (gssize)out->len, error);
}

static gboolean
sim_start_cb (gpointer user_data)
{
	ppn_agent_start (PPN_AGENT (user_data));
	return G_SOURCE_REMOVE;
}

static void
sim_agent_failed_cb (PpnAgent *agent, gpointer user_data)
{
	g_autoptr (GError) error = NULL;

	ppn_agent_get_failed (agent, &error);
	g_printerr ("ppn-sim-agents: an agent failed: %s\n", error != NULL ? error->message : "?");
	g_main_loop_quit (loop);
}

static PpnAgent *
sim_agent_new (guint node, GError **error)
{
	g_autofree gchar *node_id = g_strdup_printf ("sim%04u", node);
	g_autofree gchar *cert = g_strdup_printf ("%s/certs/%s.pem", dir, node_id);
	g_autofree gchar *key = g_strdup_printf ("%s/certs/%s-key.pem", dir, node_id);
	g_autofree gchar *node_xml = g_strdup_printf ("%s/nodes/%s.xml", dir, node_id);
	g_autofree gchar *state = g_strdup_printf ("%s/state/%s", dir, node_id);
	g_autofree gchar *ca_pem = g_build_filename (ca_dir, "ca.pem", NULL);
	g_autofree gchar *uri = g_strconcat ("test://", node_xml, NULL);
	g_autofree gchar *range = g_strdup_printf ("%d-%d", port_first, port_first + MAX (vms, 1) + 99);
	const gchar *sans[] = {"127.0.0.1", "localhost", NULL};
	g_autoptr (GKeyFile) kf = g_key_file_new ();
	PpnAgentConfig *config;
	PpnAgent *agent;

	g_mkdir_with_parents (state, 0700);
	if (!g_file_test (cert, G_FILE_TEST_EXISTS) &&
	    !ppn_tls_issue (ca_dir, PPN_TLS_ROLE_AGENT, node_id, sans, 2, cert, key, error))
		return NULL;
	if (!g_file_test (node_xml, G_FILE_TEST_EXISTS) && !sim_write_node (node_xml, node_id, node, error))
		return NULL;
	g_key_file_set_string (kf, "agent", "node-id", node_id);
	g_key_file_set_string (kf, "agent", "listen", "127.0.0.1:0");
	g_key_file_set_string (kf, "agent", "fleet-url", fleet_url);
	g_key_file_set_string (kf, "agent", "libvirt-uri", uri);
	g_key_file_set_string (kf, "agent", "state-dir", state);
	g_key_file_set_string (kf, "agent", "image-dir", image_dir);
	/* nothing binds them on the test driver: every node may use the same */
	g_key_file_set_string (kf, "agent", "port-range", range);
	g_key_file_set_string (kf, "agent", "accel", "tcg");
	g_key_file_set_integer (kf, "agent", "heartbeat-interval", interval);
	g_key_file_set_integer (kf, "agent", "max-vcpus", 128);
	g_key_file_set_integer (kf, "agent", "max-memory-mib", 65536);
	g_key_file_set_string (kf, "tls", "ca", ca_pem);
	g_key_file_set_string (kf, "tls", "cert", cert);
	g_key_file_set_string (kf, "tls", "key", key);
	config = ppn_agent_config_new_from_keyfile (kf, NULL, error);
	if (config == NULL)
		return NULL;
	agent = ppn_agent_new (config, error);
	if (agent == NULL)
		return NULL;
	g_signal_connect (agent, "failed", G_CALLBACK (sim_agent_failed_cb), NULL);
	return agent;
}

int
main (int argc, char **argv)
{
	const GOptionEntry entries[] = {
	    {"dir", 0, 0, G_OPTION_ARG_FILENAME, &dir, "Working folder (certs, node files, samples)", "DIR"},
	    {"ca-dir", 0, 0, G_OPTION_ARG_FILENAME, &ca_dir, "The fleet CA's folder", "DIR"},
	    {"fleet-url", 0, 0, G_OPTION_ARG_STRING, &fleet_url, "The mesh listener", "URL"},
	    {"image-dir", 0, 0, G_OPTION_ARG_FILENAME, &image_dir, "The image catalog", "DIR"},
	    {"first", 0, 0, G_OPTION_ARG_INT, &first, "First node number (default 0)", "N"},
	    {"count", 0, 0, G_OPTION_ARG_INT, &count, "Nodes in this process (default 1)", "K"},
	    {"vms", 0, 0, G_OPTION_ARG_INT, &vms, "Running domains per node (default 100)", "V"},
	    {"interval", 0, 0, G_OPTION_ARG_INT, &interval, "Heartbeat interval, s (default 5)", "S"},
	    {"first-port", 0, 0, G_OPTION_ARG_INT, &port_first,
	     "First host port of each node (default 40000)", "P"},
	    {"stagger", 0, 0, G_OPTION_ARG_INT, &stagger_ms,
	     "ms between two agents' starts (default: spread over"
	     " one interval)",
	     "MS"},
	    {NULL},
	};
	g_autoptr (GOptionContext) ctx = g_option_context_new (NULL);
	g_autoptr (GError) error = NULL;
	g_autoptr (GPtrArray) agents = g_ptr_array_new_with_free_func (g_object_unref);
	g_autofree gchar *certs = NULL;
	g_autofree gchar *nodes = NULL;

	g_option_context_add_main_entries (ctx, entries, NULL);
	if (!g_option_context_parse (ctx, &argc, &argv, &error) || dir == NULL || ca_dir == NULL ||
	    fleet_url == NULL || image_dir == NULL || count < 1 || vms < 0) {
		g_printerr ("ppn-sim-agents: %s\n", error != NULL ? error->message
								  : "--dir, --ca-dir, --fleet-url and"
								    " --image-dir are needed");
		return 2;
	}
	if (stagger_ms < 0)
		stagger_ms = interval * 1000 / count;
	certs = g_build_filename (dir, "certs", NULL);
	nodes = g_build_filename (dir, "nodes", NULL);
	g_mkdir_with_parents (certs, 0700);
	g_mkdir_with_parents (nodes, 0700);
	loop = g_main_loop_new (NULL, FALSE);
	samples = g_array_new (FALSE, FALSE, sizeof (gdouble));
	/* a SoupSession class must exist before its signals can be hooked */
	g_type_class_unref (g_type_class_ref (SOUP_TYPE_SESSION));
	g_signal_add_emission_hook (g_signal_lookup ("request-queued", SOUP_TYPE_SESSION), 0, sim_queued_hook,
				    NULL, NULL);
	g_signal_add_emission_hook (g_signal_lookup ("request-unqueued", SOUP_TYPE_SESSION), 0,
				    sim_unqueued_hook, NULL, NULL);

	for (gint j = 0; j < count; j++) {
		PpnAgent *agent = sim_agent_new ((guint)(first + j), &error);
		if (agent == NULL) {
			g_printerr ("ppn-sim-agents: node %d: %s\n", first + j, error->message);
			return 1;
		}
		g_ptr_array_add (agents, agent);
		/* spread over the interval, as independent nodes would be: a
		 * burst of TLS handshakes from one process starves its GTask
		 * pool (glib-networking handshakes in it), see README.md */
		g_timeout_add ((guint)(j * stagger_ms), sim_start_cb, agent);
	}
	g_printerr ("ppn-sim-agents: %d agents started (sim%04d..sim%04d)\n", count, first,
		    first + count - 1);
	g_unix_signal_add (SIGUSR1, sim_reset_cb, NULL);
	g_unix_signal_add (SIGUSR2, sim_dump_cb, NULL);
	g_unix_signal_add (SIGTERM, sim_quit_cb, NULL);
	g_unix_signal_add (SIGINT, sim_quit_cb, NULL);
	g_main_loop_run (loop);
	for (guint j = 0; j < agents->len; j++)
		ppn_agent_stop (g_ptr_array_index (agents, j));
	g_array_unref (samples);
	g_main_loop_unref (loop);
	return 0;
}
