#include "config.h"

#define G_LOG_DOMAIN "ppn-test"

#include <errno.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ppn-error.h"
#include "ppn-test-util.h"
#include "ppn-tls.h"
#include "ppn-token.h"

static void ppn_test_agent_free (PpnTestAgent *agent);

gchar *
ppn_test_build_path (const gchar *name)
{
	const gchar *dir = g_getenv ("PPN_BUILDDIR");

	return g_build_filename (dir != NULL ? dir : ".", name, NULL);
}

gchar *
ppn_test_src_path (const gchar *name)
{
	const gchar *dir = g_getenv ("PPN_SRCDIR");

	return g_build_filename (dir != NULL ? dir : ".", name, NULL);
}

gchar *
ppn_test_run (const gchar *const *argv, gint *exit_status)
{
	g_autofree gchar *out = NULL;
	gint status = -1;

	if (!g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
			   NULL, &out, NULL, &status, NULL))
		status = -1;
	if (exit_status != NULL)
		*exit_status = status;
	return g_steal_pointer (&out);
}

void
ppn_test_rm_rf (const gchar *path)
{
	const gchar *unprotect[] = {"chattr", "-R", "-a", path, NULL};
	const gchar *rm[] = {"rm", "-rf", path, NULL};
	g_autofree gchar *out = ppn_test_run (unprotect, NULL);
	g_autofree gchar *out2 = ppn_test_run (rm, NULL);
}

gboolean
ppn_test_sh (const gchar *cmd)
{
	const gchar *argv[] = {"sh", "-c", cmd, NULL};
	gint status = -1;

	return g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, NULL) &&
	       g_spawn_check_wait_status (status, NULL);
}

gboolean
ppn_test_libvirt_available (const gchar *uri)
{
	const gchar *argv[] = {"timeout", "10", "virsh", "-c", uri, "version", NULL};
	g_autofree gchar *out = NULL;
	gint status = -1;

	out = ppn_test_run (argv, &status);
	return g_spawn_check_wait_status (status, NULL);
}

static gboolean
ppn_test_write (const gchar *path, const gchar *contents, GError **error)
{
	return g_file_set_contents (path, contents, -1, error);
}

static gboolean
ppn_test_make_fake_image (const gchar *image_dir, GError **error)
{
	g_autofree gchar *dir = g_build_filename (image_dir, "test-guest", NULL);
	g_autofree gchar *conf = g_build_filename (dir, "image.conf", NULL);
	g_autofree gchar *kernel = g_build_filename (dir, "vmlinuz", NULL);
	g_autofree gchar *initrd = g_build_filename (dir, "initrd.img", NULL);

	g_mkdir_with_parents (dir, 0755);
	return ppn_test_write (kernel, "not a kernel: test driver only\n", error) &&
	       ppn_test_write (initrd, "not an initrd: test driver only\n", error) &&
	       ppn_test_write (conf,
			       "[image]\nname=test-guest\ndescription=fake image for the test driver\n"
			       "kernel=vmlinuz\ninitrd=initrd.img\ncmdline=console=ttyS0\n",
			       error);
}

static gboolean
ppn_test_build_guest (const gchar *image_dir, GError **error)
{
	g_autofree gchar *tool = ppn_test_src_path ("tools/build-test-guest");
	g_autofree gchar *out_dir = g_build_filename (image_dir, "test-guest", NULL);
	const gchar *argv[] = {tool, "--output", out_dir, NULL};
	gint status = -1;
	g_autofree gchar *out = NULL;

	if (!g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, NULL, &status, error))
		return FALSE;
	return g_spawn_check_wait_status (status, error);
}

PpnTestFleet *
ppn_test_fleet_new (const PpnTestFleetOptions *opts, GError **error)
{
	g_autoptr(PpnTestFleet) fleet = g_new0 (PpnTestFleet, 1);
	g_autofree gchar *tenants = NULL;
	g_autofree gchar *hash1 = NULL;
	g_autofree gchar *hash2 = NULL;
	g_autofree gchar *fleet_pem = NULL;
	g_autofree gchar *fleet_key = NULL;
	g_autofree gchar *agent_pem = NULL;
	g_autofree gchar *agent_key = NULL;
	g_autofree gchar *tenants_path = NULL;
	const gchar *run_id = g_getenv ("PPN_TEST_RUN_ID");
	const gchar *sans[] = {"127.0.0.1", "localhost", NULL};
	static guint counter = 0;
	guint base;

	fleet->opts = *opts;
	fleet->agents = g_ptr_array_new_with_free_func ((GDestroyNotify)ppn_test_agent_free);
	fleet->dir = g_dir_make_tmp ("ppn-fleet-XXXXXX", error);
	if (fleet->dir == NULL)
		return NULL;
	/* qemu runs as libvirt-qemu and must reach the image and state dirs */
	g_chmod (fleet->dir, 0755);
	fleet->ca_dir = g_build_filename (fleet->dir, "ca", NULL);
	fleet->image_dir = g_build_filename (fleet->dir, "images", NULL);
	fleet->libvirt_uri = g_strdup (opts->libvirt_uri);
	fleet->node_id = g_strdup_printf ("test-%s-%u-%u", run_id != NULL ? run_id : "x", (guint)getpid (),
					  counter++);
	/* a port range of our own, so concurrent test programs do not meet */
	base = 30000 + (guint)(getpid () % 300) * 100 + (counter % 2) * 50;
	fleet->port_first = (guint16)base;
	fleet->port_last = (guint16)(base + 49);
	/* the daemons' own ports, below the kernel's ephemeral range (32768
	 * and up), so that a daemon restarted on its port never finds it
	 * taken by some process's outgoing connection */
	base = 20000 + ((guint)getpid () * 7 + counter * 3) % 3000 * 4;
	fleet->tenant_port = (guint16)base;
	fleet->mesh_port = (guint16)(base + 1);
	fleet->agent_port = (guint16)(base + 2);

	fleet_pem = g_build_filename (fleet->dir, "fleet.pem", NULL);
	fleet_key = g_build_filename (fleet->dir, "fleet-key.pem", NULL);
	agent_pem = g_build_filename (fleet->dir, "agent.pem", NULL);
	agent_key = g_build_filename (fleet->dir, "agent-key.pem", NULL);
	if (!ppn_tls_ca_create (fleet->ca_dir, "ppn test CA", 2, error) ||
	    !ppn_tls_issue (fleet->ca_dir, PPN_TLS_ROLE_FLEET, "fleet", sans, 2, fleet_pem, fleet_key, error) ||
	    !ppn_tls_issue (fleet->ca_dir, PPN_TLS_ROLE_AGENT, fleet->node_id, sans, 2, agent_pem, agent_key,
			    error))
		return NULL;

	fleet->token1 = opts->token1 != NULL ? g_strdup (opts->token1) : ppn_token_new (error);
	fleet->token2 = ppn_token_new (error);
	if (fleet->token1 == NULL || fleet->token2 == NULL)
		return NULL;
	hash1 = ppn_token_hash (fleet->token1);
	hash2 = ppn_token_hash (fleet->token2);
	tenants = g_strdup_printf ("[tenant alice]\ntoken-hash=%s\nmax-vms=%u\n\n"
				   "[tenant bob]\ntoken-hash=%s\nmax-vms=%u\n",
				   hash1, opts->max_vms, hash2, opts->max_vms);
	tenants_path = g_build_filename (fleet->dir, "tenants.conf", NULL);
	if (!ppn_test_write (tenants_path, tenants, error))
		return NULL;

	fleet->fleet_conf = g_build_filename (fleet->dir, "fleetd.conf", NULL);
	if (opts->real_guest ? !ppn_test_build_guest (fleet->image_dir, error)
			     : !ppn_test_make_fake_image (fleet->image_dir, error))
		return NULL;
	fleet->session = soup_session_new_with_options ("timeout", 300, NULL);
	{
		g_autofree gchar *ca_pem = g_build_filename (fleet->ca_dir, "ca.pem", NULL);
		g_autoptr(GTlsDatabase) db = ppn_tls_load_ca (ca_pem, error);
		if (db == NULL)
			return NULL;
		soup_session_set_tls_database (fleet->session, db);
	}
	return g_steal_pointer (&fleet);
}

static void
ppn_test_child_setup (gpointer user_data)
{
	/* a test that aborts takes its daemons with it */
	prctl (PR_SET_PDEATHSIG, SIGTERM);
}

static GSubprocess *
ppn_test_spawn (PpnTestFleet *fleet, const gchar *binary, const gchar *config, const gchar *log, GError **error)
{
	g_autofree gchar *path = ppn_test_build_path (binary);
	g_autofree gchar *log_path = g_build_filename (fleet->dir, log, NULL);
	g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_INHERIT |
										     G_SUBPROCESS_FLAGS_STDERR_MERGE);

	g_unlink (log_path);
	g_subprocess_launcher_set_stdout_file_path (launcher, log_path);
	g_subprocess_launcher_setenv (launcher, "G_MESSAGES_DEBUG", "all", TRUE);
	g_subprocess_launcher_unsetenv (launcher, "G_DEBUG");
	g_subprocess_launcher_set_child_setup (launcher, ppn_test_child_setup, NULL, NULL);
	/* PPN_TEST_VALGRIND=DIR runs the daemons under valgrind, one log per
	 * process in DIR, for leak hunting (tools/run-valgrind) */
	if (g_getenv ("PPN_TEST_VALGRIND") != NULL) {
		g_autofree gchar *vlog = g_strdup_printf ("--log-file=%s/%s-%%p.log", g_getenv ("PPN_TEST_VALGRIND"),
							  binary);
		g_subprocess_launcher_setenv (launcher, "G_SLICE", "always-malloc", TRUE);
		return g_subprocess_launcher_spawn (launcher, error, "valgrind", "--leak-check=full",
						    "--show-leak-kinds=definite", "--num-callers=30", vlog, path,
						    "--config", config, NULL);
	}
	return g_subprocess_launcher_spawn (launcher, error, path, "--config", config, NULL);
}

/* wait for a line containing @needle in a daemon's log, and return it */
static gchar *
ppn_test_wait_log (PpnTestFleet *fleet, GSubprocess *proc, const gchar *log, const gchar *needle, GError **error)
{
	g_autofree gchar *log_path = g_build_filename (fleet->dir, log, NULL);
	gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

	while (g_get_monotonic_time () < deadline) {
		g_autofree gchar *contents = NULL;
		const gchar *hit;
		if (g_file_get_contents (log_path, &contents, NULL, NULL) &&
		    (hit = strstr (contents, needle)) != NULL) {
			const gchar *end = strchr (hit, '\n');
			return g_strndup (hit, end != NULL ? (gsize)(end - hit) : strlen (hit));
		}
		if (g_subprocess_get_identifier (proc) == NULL)
			break;
		g_main_context_iteration (NULL, FALSE);
		g_usleep (20000);
	}
	{
		g_autofree gchar *contents = NULL;
		g_file_get_contents (log_path, &contents, NULL, NULL);
		g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, "no '%s' in %s:\n%s", needle, log,
			     contents != NULL ? contents : "");
	}
	return NULL;
}

gboolean
ppn_test_fleet_start_fleetd (PpnTestFleet *fleet, GError **error)
{
	g_autofree gchar *line = NULL;
	guint tp = 0, mp = 0;
	const gchar *ports;
	/* the same ports on a restart, so the agents find the fleet again */
	g_autofree gchar *conf = g_strdup_printf (
		"[fleet]\ntenant-listen=127.0.0.1:%u\nmesh-listen=127.0.0.1:%u\n"
		"state-dir=%s/fleet\ntenants-file=tenants.conf\nnode-timeout=%u\nlost-grace=%u\n%s\n"
		"[tls]\nca=ca/ca.pem\ncert=fleet.pem\nkey=fleet-key.pem\n",
		fleet->tenant_port, fleet->mesh_port, fleet->dir,
		fleet->opts.node_timeout != 0 ? fleet->opts.node_timeout : 15,
		fleet->opts.lost_grace != 0 ? fleet->opts.lost_grace : 30,
		fleet->opts.fleet_extra != NULL ? fleet->opts.fleet_extra : "");

	if (!ppn_test_write (fleet->fleet_conf, conf, error))
		return FALSE;
	fleet->fleetd = ppn_test_spawn (fleet, "ppn-fleetd", fleet->fleet_conf, "fleetd.log", error);
	if (fleet->fleetd == NULL)
		return FALSE;
	line = ppn_test_wait_log (fleet, fleet->fleetd, "fleetd.log", "ppn-fleetd: tenant API on", error);
	if (line == NULL)
		return FALSE;
	ports = strstr (line, "(ports ");
	if (ports == NULL || sscanf (ports, "(ports %u, %u)", &tp, &mp) != 2) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, "cannot parse '%s'", line);
		return FALSE;
	}
	fleet->tenant_port = (guint16)tp;
	fleet->mesh_port = (guint16)mp;
	g_free (fleet->url);
	fleet->url = g_strdup_printf ("https://127.0.0.1:%u", tp);
	return TRUE;
}

/* an agent NAME: NAMEd.conf, NAMEd.log, state in NAME/, certificate
 * NAME.pem; its URL from the line it prints once it listens */
static GSubprocess *
ppn_test_spawn_agentd (PpnTestFleet *fleet,
		       const gchar *name,
		       const gchar *node_id,
		       guint16 listen_port,
		       guint16 port_first,
		       guint16 port_last,
		       gchar **url,
		       GError **error)
{
	g_autofree gchar *conf_name = g_strconcat (name, "d.conf", NULL);
	g_autofree gchar *log = g_strconcat (name, "d.log", NULL);
	g_autofree gchar *conf_path = g_build_filename (fleet->dir, conf_name, NULL);
	g_autofree gchar *conf = NULL;
	g_autofree gchar *line = NULL;
	g_autoptr(GSubprocess) proc = NULL;

	conf = g_strdup_printf ("[agent]\nnode-id=%s\nlisten=127.0.0.1:%u\nfleet-url=https://127.0.0.1:%u\n"
				"libvirt-uri=%s\nstate-dir=%s/%s\nimage-dir=%s\nport-range=%u-%u\n"
				"forward-address=127.0.0.1\naccel=tcg\nheartbeat-interval=1\n"
				"capacity-vcpus=%u\ncapacity-memory-mib=%u\n%s\n"
				"[tls]\nca=ca/ca.pem\ncert=%s.pem\nkey=%s-key.pem\n",
				node_id, listen_port, fleet->mesh_port, fleet->libvirt_uri, fleet->dir, name,
				fleet->image_dir, port_first, port_last,
				fleet->opts.capacity_vcpus != 0 ? fleet->opts.capacity_vcpus : 64,
				(fleet->opts.capacity_vcpus != 0 ? fleet->opts.capacity_vcpus : 64) * 512,
				fleet->opts.agent_extra != NULL ? fleet->opts.agent_extra : "", name, name);
	if (!ppn_test_write (conf_path, conf, error))
		return NULL;
	proc = ppn_test_spawn (fleet, "ppn-agentd", conf_path, log, error);
	if (proc == NULL)
		return NULL;
	line = ppn_test_wait_log (fleet, proc, log, "listening on ", error);
	if (line == NULL)
		return NULL;
	*url = g_strdup (strstr (line, "listening on ") + strlen ("listening on "));
	return g_steal_pointer (&proc);
}

gboolean
ppn_test_fleet_start_agentd (PpnTestFleet *fleet, GError **error)
{
	g_autofree gchar *url = NULL;

	fleet->agentd = ppn_test_spawn_agentd (fleet, "agent", fleet->node_id, fleet->agent_port, fleet->port_first,
					       fleet->port_last, &url, error);
	if (fleet->agentd == NULL)
		return FALSE;
	g_free (fleet->agent_url);
	fleet->agent_url = g_steal_pointer (&url);
	return TRUE;
}

static void
ppn_test_agent_free (PpnTestAgent *agent)
{
	ppn_test_agent_stop (agent, SIGTERM);
	g_free (agent->name);
	g_free (agent->node_id);
	g_free (agent->url);
	g_free (agent);
}

static gboolean
ppn_test_fleet_port_range_taken (PpnTestFleet *fleet, guint16 first, guint16 last)
{
	if (first <= fleet->port_last && fleet->port_first <= last)
		return TRUE;
	for (guint i = 0; i < fleet->agents->len; i++) {
		PpnTestAgent *other = g_ptr_array_index (fleet->agents, i);
		if (first <= other->port_last && other->port_first <= last)
			return TRUE;
	}
	return FALSE;
}

/* one more agent, started and registered (its first heartbeat taken);
 * it listens on a port of the kernel's choosing and forwards from a
 * range no other agent of the fleet has */
PpnTestAgent *
ppn_test_fleet_add_agent (PpnTestFleet *fleet, GError **error)
{
	PpnTestAgent *agent;
	g_autofree gchar *cert = NULL;
	g_autofree gchar *key = NULL;
	g_autofree gchar *log = NULL;
	g_autofree gchar *line = NULL;
	const gchar *sans[] = {"127.0.0.1", "localhost", NULL};
	guint16 first;
	guint n = fleet->agents->len + 2;

	do
		first = ppn_test_free_port_range (20);
	while (ppn_test_fleet_port_range_taken (fleet, first, (guint16)(first + 19)));
	/* owned by the fleet from here on, whatever fails */
	agent = g_new0 (PpnTestAgent, 1);
	g_ptr_array_add (fleet->agents, agent);
	agent->port_first = first;
	agent->port_last = (guint16)(first + 19);
	agent->name = g_strdup_printf ("agent%u", n);
	agent->node_id = g_strdup_printf ("%s-n%u", fleet->node_id, n);
	cert = g_strdup_printf ("%s/%s.pem", fleet->dir, agent->name);
	key = g_strdup_printf ("%s/%s-key.pem", fleet->dir, agent->name);
	if (!ppn_tls_issue (fleet->ca_dir, PPN_TLS_ROLE_AGENT, agent->node_id, sans, 2, cert, key, error))
		return NULL;
	agent->agentd = ppn_test_spawn_agentd (fleet, agent->name, agent->node_id, 0, agent->port_first,
					       agent->port_last, &agent->url, error);
	if (agent->agentd == NULL)
		return NULL;
	log = g_strconcat (agent->name, "d.log", NULL);
	line = ppn_test_wait_log (fleet, agent->agentd, log, "First heartbeat to ", error);
	if (line == NULL)
		return NULL;
	return agent;
}

gboolean
ppn_test_fleet_wait_node (PpnTestFleet *fleet, guint timeout_seconds, GError **error)
{
	gint64 deadline = g_get_monotonic_time () + (gint64)timeout_seconds * G_USEC_PER_SEC;

	while (g_get_monotonic_time () < deadline) {
		guint status = 0;
		g_autoptr(JsonNode) reply = ppn_test_fleet_call (fleet, fleet->token1, "GET", "/v1/images", NULL,
								 &status, NULL);
		if (status == 200 && reply != NULL &&
		    json_array_get_length (json_object_get_array_member (json_node_get_object (reply), "images")) > 0)
			return TRUE;
		g_usleep (100000);
	}
	g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, "node %s did not register within %u s", fleet->node_id,
		     timeout_seconds);
	return FALSE;
}

/* both daemons up and the node registered */
gboolean
ppn_test_fleet_start (PpnTestFleet *fleet, GError **error)
{
	if (!ppn_test_fleet_start_fleetd (fleet, error) || !ppn_test_fleet_start_agentd (fleet, error) ||
	    !ppn_test_fleet_wait_node (fleet, 30, error))
		return FALSE;
	for (guint i = 1; i < fleet->opts.agent_count; i++) {
		if (ppn_test_fleet_add_agent (fleet, error) == NULL)
			return FALSE;
	}
	return TRUE;
}

/* for tests: a whole fleet or a failed test */
PpnTestFleet *
ppn_test_fleet_new_started (const PpnTestFleetOptions *opts)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnTestFleet) fleet = ppn_test_fleet_new (opts, &error);

	g_assert_no_error (error);
	ppn_test_fleet_start (fleet, &error);
	g_assert_no_error (error);
	return g_steal_pointer (&fleet);
}

static void
ppn_test_stopped_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_subprocess_wait_finish (G_SUBPROCESS (source), res, NULL);
	*(gboolean *)user_data = TRUE;
}

/* @signum, then up to 30 s to go. A ppn-fleetd stopping while an agent
 * is in the middle of a TLS handshake with it can hang in
 * soup_server_disconnect() (glib-networking's close waits on the
 * handshake); a test is not about that, so it is killed then, loudly. */
static void
ppn_test_stop (GSubprocess **proc, gint signum)
{
	gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
	gboolean done = FALSE;

	if (*proc == NULL)
		return;
	g_subprocess_send_signal (*proc, signum);
	g_subprocess_wait_async (*proc, NULL, ppn_test_stopped_cb, &done);
	while (!done && g_get_monotonic_time () < deadline) {
		if (!g_main_context_iteration (NULL, FALSE))
			g_usleep (10 * 1000);
	}
	if (!done) {
		g_printerr ("ppn-test: pid %s did not stop within 30 s of signal %d; killing it\n",
			    g_subprocess_get_identifier (*proc), signum);
		g_subprocess_force_exit (*proc);
		while (!done)
			g_main_context_iteration (NULL, TRUE);
	}
	g_clear_object (proc);
}

void
ppn_test_fleet_stop_fleetd (PpnTestFleet *fleet, gint signum)
{
	ppn_test_stop (&fleet->fleetd, signum);
}

void
ppn_test_fleet_stop_agentd (PpnTestFleet *fleet, gint signum)
{
	ppn_test_stop (&fleet->agentd, signum);
}

void
ppn_test_agent_stop (PpnTestAgent *agent, gint signum)
{
	ppn_test_stop (&agent->agentd, signum);
}

JsonNode *
ppn_test_fleet_call (PpnTestFleet *fleet,
		     const gchar *token,
		     const gchar *method,
		     const gchar *path,
		     const gchar *body,
		     guint *status,
		     gchar **raw)
{
	g_autofree gchar *url = g_strconcat (fleet->url, path, NULL);
	g_autoptr(SoupMessage) msg = soup_message_new (method, url);
	g_autoptr(GBytes) reply = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(GError) error = NULL;
	gsize len = 0;
	const gchar *data;

	g_assert_nonnull (msg);
	if (token != NULL) {
		g_autofree gchar *auth = g_strconcat ("Bearer ", token, NULL);
		soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
	}
	if (body != NULL) {
		g_autoptr(GBytes) bytes = g_bytes_new (body, strlen (body));
		soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
	}
	reply = soup_session_send_and_read (fleet->session, msg, NULL, &error);
	*status = reply != NULL ? soup_message_get_status (msg) : 0;
	{
		const gchar *receipt = soup_message_headers_get_one (soup_message_get_response_headers (msg),
								     "Ppn-Ledger-Index");
		fleet->last_receipt = receipt != NULL ? g_ascii_strtoll (receipt, NULL, 10) : -1;
	}
	if (reply == NULL) {
		g_test_message ("%s %s: %s", method, path, error->message);
		return NULL;
	}
	data = g_bytes_get_data (reply, &len);
	if (raw != NULL)
		*raw = g_strndup (data, len);
	if (len == 0 || !json_parser_load_from_data (parser, data, (gssize)len, NULL))
		return NULL;
	return json_node_ref (json_parser_get_root (parser));
}

gint
ppn_test_fleet_ppnctl (PpnTestFleet *fleet, const gchar *token, gchar **out, gchar **err, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
	g_auto(GStrv) env = g_get_environ ();
	g_autofree gchar *ca = g_build_filename (fleet->ca_dir, "ca.pem", NULL);
	g_autoptr(GError) error = NULL;
	gint status = -1;
	const gchar *arg;
	va_list args;

	g_ptr_array_add (argv, ppn_test_build_path ("ppnctl"));
	va_start (args, err);
	while ((arg = va_arg (args, const gchar *)) != NULL)
		g_ptr_array_add (argv, g_strdup (arg));
	va_end (args);
	g_ptr_array_add (argv, NULL);
	env = g_environ_setenv (env, "PPN_URL", fleet->url, TRUE);
	env = g_environ_setenv (env, "PPN_CA", ca, TRUE);
	env = g_environ_unsetenv (env, "PPN_TOKEN");
	if (token != NULL)
		env = g_environ_setenv (env, "PPN_TOKEN", token, TRUE);
	if (!g_spawn_sync (NULL, (gchar **)argv->pdata, env, G_SPAWN_DEFAULT, NULL, NULL, out, err, &status,
			   &error))
		g_error ("cannot run ppnctl: %s", error->message);
	return WIFEXITED (status) ? WEXITSTATUS (status) : 128;
}

/* a call to the agent's API as the fleet (the fleet's certificate) */
JsonNode *
ppn_test_agent_call (PpnTestFleet *fleet, const gchar *method, const gchar *path, const gchar *body, guint *status)
{
	g_autofree gchar *cert_path = g_build_filename (fleet->dir, "fleet.pem", NULL);
	g_autofree gchar *key_path = g_build_filename (fleet->dir, "fleet-key.pem", NULL);
	g_autofree gchar *url = g_strconcat (fleet->agent_url, path, NULL);
	g_autoptr(GTlsCertificate) cert = g_tls_certificate_new_from_files (cert_path, key_path, NULL);
	g_autoptr(SoupMessage) msg = soup_message_new (method, url);
	g_autoptr(GBytes) reply = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();

	g_assert_nonnull (cert);
	soup_message_set_tls_client_certificate (msg, cert);
	if (body != NULL) {
		g_autoptr(GBytes) bytes = g_bytes_new (body, strlen (body));
		soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
	}
	reply = soup_session_send_and_read (fleet->session, msg, NULL, NULL);
	*status = reply != NULL ? soup_message_get_status (msg) : 0;
	if (reply == NULL || g_bytes_get_size (reply) == 0 ||
	    !json_parser_load_from_data (parser, g_bytes_get_data (reply, NULL), (gssize)g_bytes_get_size (reply), NULL))
		return NULL;
	return json_node_ref (json_parser_get_root (parser));
}

/* a certificate of the fleet's CA for @role and @name, in the fleet's folder */
gboolean
ppn_test_fleet_issue (PpnTestFleet *fleet,
		      PpnTlsRole role,
		      const gchar *name,
		      gchar **cert_path,
		      gchar **key_path,
		      GError **error)
{
	const gchar *sans[] = {"127.0.0.1", NULL};
	g_autofree gchar *base = g_strdup_printf ("%s/%s-%s", fleet->dir, ppn_tls_role_to_string (role), name);
	g_autofree gchar *cert = g_strconcat (base, ".pem", NULL);
	g_autofree gchar *key = g_strconcat (base, "-key.pem", NULL);

	if (!g_file_test (cert, G_FILE_TEST_EXISTS) &&
	    !ppn_tls_issue (fleet->ca_dir, role, name, sans, 1, cert, key, error))
		return FALSE;
	if (cert_path != NULL)
		*cert_path = g_steal_pointer (&cert);
	if (key_path != NULL)
		*key_path = g_steal_pointer (&key);
	return TRUE;
}

/* a call to the fleet's mesh listener with a certificate for @role and
 * @name (@role PPN_TLS_ROLE_UNKNOWN: none); status 0 when the TLS
 * handshake fails */
static GBytes *
ppn_test_mesh_send (PpnTestFleet *fleet,
		    PpnTlsRole role,
		    const gchar *name,
		    const gchar *method,
		    const gchar *path,
		    guint *status)
{
	g_autofree gchar *url = g_strdup_printf ("https://127.0.0.1:%u%s", fleet->mesh_port, path);
	g_autoptr(SoupMessage) msg = soup_message_new (method, url);
	g_autoptr(GBytes) reply = NULL;
	g_autoptr(GError) error = NULL;

	if (role != PPN_TLS_ROLE_UNKNOWN) {
		g_autofree gchar *cert_path = NULL;
		g_autofree gchar *key_path = NULL;
		g_autoptr(GTlsCertificate) cert = NULL;
		ppn_test_fleet_issue (fleet, role, name, &cert_path, &key_path, &error);
		g_assert_no_error (error);
		cert = ppn_tls_load_certificate (cert_path, key_path, &error);
		g_assert_no_error (error);
		soup_message_set_tls_client_certificate (msg, cert);
	}
	reply = soup_session_send_and_read (fleet->session, msg, NULL, &error);
	*status = reply != NULL ? soup_message_get_status (msg) : 0;
	if (reply == NULL)
		g_test_message ("%s %s: %s", method, path, error->message);
	return g_steal_pointer (&reply);
}

JsonNode *
ppn_test_fleet_mesh_call (PpnTestFleet *fleet,
			  PpnTlsRole role,
			  const gchar *name,
			  const gchar *method,
			  const gchar *path,
			  guint *status)
{
	g_autoptr(GBytes) reply = ppn_test_mesh_send (fleet, role, name, method, path, status);
	g_autoptr(JsonParser) parser = json_parser_new ();

	if (reply == NULL || g_bytes_get_size (reply) == 0 ||
	    !json_parser_load_from_data (parser, g_bytes_get_data (reply, NULL), (gssize)g_bytes_get_size (reply), NULL))
		return NULL;
	return json_node_ref (json_parser_get_root (parser));
}

gchar *
ppn_test_fleet_mesh_get_text (PpnTestFleet *fleet, PpnTlsRole role, const gchar *name, const gchar *path, guint *status)
{
	g_autoptr(GBytes) reply = ppn_test_mesh_send (fleet, role, name, "GET", path, status);

	return reply != NULL ? g_strndup (g_bytes_get_data (reply, NULL), g_bytes_get_size (reply)) : NULL;
}

/* @node_id's entry in an answer of GET /mesh/v1/nodes, or NULL */
JsonObject *
ppn_test_fleet_find_node (JsonNode *nodes, const gchar *node_id)
{
	JsonArray *list;

	g_assert_nonnull (nodes);
	list = json_object_get_array_member (json_node_get_object (nodes), "nodes");
	for (guint i = 0; i < json_array_get_length (list); i++) {
		JsonObject *node = json_array_get_object_element (list, i);
		if (g_strcmp0 (json_object_get_string_member (node, "id"), node_id) == 0)
			return node;
	}
	return NULL;
}

/* how many domains the agent reports for @tenant (from their metadata) */
guint
ppn_test_node_domains_of (PpnTestFleet *fleet, const gchar *tenant)
{
	guint status = 0, n = 0;
	g_autoptr(JsonNode) reply = ppn_test_agent_call (fleet, "GET", "/agent/v1/domains", NULL, &status);
	JsonArray *doms;

	g_assert_cmpuint (status, ==, 200);
	doms = json_object_get_array_member (json_node_get_object (reply), "domains");
	for (guint i = 0; i < json_array_get_length (doms); i++) {
		JsonObject *d = json_array_get_object_element (doms, i);
		if (g_strcmp0 (json_object_get_string_member (d, "tenant"), tenant) == 0)
			n++;
	}
	return n;
}

/* GET http://127.0.0.1:port/ with a short timeout: a forward accepts
 * connections before its guest is up, so a request can hang */
gchar *
ppn_test_http_get (guint16 port, GError **error)
{
	g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", 2, NULL);
	g_autofree gchar *url = g_strdup_printf ("http://127.0.0.1:%u/", port);
	g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
	g_autoptr(GBytes) body = soup_session_send_and_read (session, msg, NULL, error);

	if (body == NULL)
		return NULL;
	if (soup_message_get_status (msg) != 200) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "HTTP %u", soup_message_get_status (msg));
		return NULL;
	}
	return g_strstrip (g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body)));
}

/* the first of @count consecutive loopback TCP ports that are free now */
guint16
ppn_test_free_port_range (guint count)
{
	for (guint attempt = 0; attempt < 50; attempt++) {
		guint16 base = (guint16)g_random_int_range (30000, 60000);
		gboolean ok = TRUE;

		for (guint i = 0; i < count && ok; i++) {
			g_autoptr(GSocket) s = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
							     G_SOCKET_PROTOCOL_TCP, NULL);
			g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
			g_autoptr(GSocketAddress) sa = g_inet_socket_address_new (lo, (guint16)(base + i));
			ok = g_socket_bind (s, sa, TRUE, NULL);
		}
		if (ok)
			return base;
	}
	g_assert_not_reached ();
	return 0;
}

/* the ppn- domains libvirt has for this test's node, read with virsh */
GPtrArray *
ppn_test_node_domains (PpnTestFleet *fleet)
{
	return ppn_test_node_domains_on (fleet, fleet->node_id);
}

/* the same for any node of the fleet */
GPtrArray *
ppn_test_node_domains_on (PpnTestFleet *fleet, const gchar *node_id)
{
	const gchar *list_argv[] = {"virsh", "-q", "-c", fleet->libvirt_uri, "list", "--all", "--name", NULL};
	g_autofree gchar *out = ppn_test_run (list_argv, NULL);
	g_auto(GStrv) names = g_strsplit (out != NULL ? out : "", "\n", -1);
	GPtrArray *found = g_ptr_array_new_with_free_func (g_free);
	g_autofree gchar *needle = g_strdup_printf ("<ppn:node>%s</ppn:node>", node_id);

	for (guint i = 0; names[i] != NULL; i++) {
		const gchar *name = g_strstrip (names[i]);
		const gchar *dump_argv[] = {"virsh", "-c", fleet->libvirt_uri, "dumpxml", name, NULL};
		g_autofree gchar *xml = NULL;
		if (!g_str_has_prefix (name, "ppn-"))
			continue;
		xml = ppn_test_run (dump_argv, NULL);
		if (xml != NULL && strstr (xml, needle) != NULL)
			g_ptr_array_add (found, g_strdup (name));
	}
	return found;
}

static void
ppn_test_burst_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	PpnTestBurst *b = user_data;
	SoupMessage *msg = soup_session_get_async_result_message (SOUP_SESSION (source), res);
	g_autoptr(GBytes) body = soup_session_send_and_read_finish (SOUP_SESSION (source), res, NULL);
	guint status = body != NULL ? soup_message_get_status (msg) : 0;
	g_autoptr(JsonParser) parser = json_parser_new ();

	if (status == 201) {
		b->created++;
		if (json_parser_load_from_data (parser, g_bytes_get_data (body, NULL), (gssize)g_bytes_get_size (body), NULL))
			g_ptr_array_add (b->ids, g_strdup (json_object_get_string_member (
							 json_node_get_object (json_parser_get_root (parser)), "id")));
	} else if (status == 403) {
		b->quota++;
	} else if (status == 429) {
		b->too_many++;
	} else {
		b->other++;
	}
	g_atomic_int_inc ((gint *)&b->done);
}

static gpointer
ppn_test_burst_thread (gpointer data)
{
	PpnTestBurst *b = data;
	g_autoptr(GMainContext) ctx = g_main_context_new ();
	g_autoptr(SoupSession) session = NULL;
	g_autofree gchar *url = g_strconcat (b->fleet->url, "/v1/vms", NULL);
	g_autofree gchar *auth = g_strconcat ("Bearer ", b->token, NULL);

	g_main_context_push_thread_default (ctx);
	session = soup_session_new_with_options ("max-conns", b->count + 8, "max-conns-per-host", b->count + 8,
						 "timeout", 120, NULL);
	soup_session_set_tls_database (session, soup_session_get_tls_database (b->fleet->session));
	for (guint i = 0; i < b->count; i++) {
		g_autofree gchar *body = g_strdup_printf (
			"{\"name\":\"%s%u\",\"image\":\"test-guest\",\"memory_mib\":64}", b->prefix, i);
		g_autoptr(SoupMessage) msg = soup_message_new ("POST", url);
		g_autoptr(GBytes) bytes = g_bytes_new (body, strlen (body));
		soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
		soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
		soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL, ppn_test_burst_cb, b);
	}
	while ((guint)g_atomic_int_get ((gint *)&b->done) < b->count)
		g_main_context_iteration (ctx, TRUE);
	g_main_context_pop_thread_default (ctx);
	return NULL;
}

PpnTestBurst *
ppn_test_burst_start (PpnTestFleet *fleet, const gchar *token, const gchar *prefix, guint count)
{
	PpnTestBurst *b = g_new0 (PpnTestBurst, 1);

	b->fleet = fleet;
	b->token = g_strdup (token);
	b->prefix = g_strdup (prefix);
	b->count = count;
	b->ids = g_ptr_array_new_with_free_func (g_free);
	b->thread = g_thread_new ("ppn-burst", ppn_test_burst_thread, b);
	return b;
}

gboolean
ppn_test_burst_finished (PpnTestBurst *b)
{
	return (guint)g_atomic_int_get ((gint *)&b->done) >= b->count;
}

void
ppn_test_burst_join (PpnTestBurst *b)
{
	if (b->thread != NULL)
		g_thread_join (g_steal_pointer (&b->thread));
}

void
ppn_test_burst_free (PpnTestBurst *b)
{
	if (b == NULL)
		return;
	ppn_test_burst_join (b);
	g_ptr_array_unref (b->ids);
	g_free (b->token);
	g_free (b->prefix);
	g_free (b);
}

static void
ppn_test_dump_log (PpnTestFleet *fleet, const gchar *log)
{
	g_autofree gchar *path = g_build_filename (fleet->dir, log, NULL);
	g_autofree gchar *contents = NULL;

	if (g_file_get_contents (path, &contents, NULL, NULL))
		g_printerr ("---- %s ----\n%s\n", log, contents);
}

static void
ppn_test_destroy_leftovers (PpnTestFleet *fleet, const gchar *node_id)
{
	g_autoptr(GPtrArray) left = ppn_test_node_domains_on (fleet, node_id);

	for (guint i = 0; i < left->len; i++) {
		const gchar *argv[] = {"virsh", "-c", fleet->libvirt_uri, "destroy", g_ptr_array_index (left, i), NULL};
		g_autofree gchar *out = ppn_test_run (argv, NULL);
		g_printerr ("destroyed leftover domain %s\n", (const gchar *)g_ptr_array_index (left, i));
	}
}

void
ppn_test_fleet_free (PpnTestFleet *fleet)
{
	if (fleet == NULL)
		return;
	if ((g_test_initialized () && g_test_failed ()) || g_getenv ("PPN_TEST_KEEP_LOGS") != NULL) {
		ppn_test_dump_log (fleet, "fleetd.log");
		ppn_test_dump_log (fleet, "agentd.log");
		for (guint i = 0; fleet->agents != NULL && i < fleet->agents->len; i++) {
			PpnTestAgent *agent = g_ptr_array_index (fleet->agents, i);
			g_autofree gchar *log = g_strconcat (agent->name, "d.log", NULL);
			ppn_test_dump_log (fleet, log);
		}
	}
	/* the agents first: a fleet that stops while one heartbeats may hang
	 * (see ppn_test_stop) */
	ppn_test_fleet_stop_agentd (fleet, SIGTERM);
	for (guint i = 0; fleet->agents != NULL && i < fleet->agents->len; i++)
		ppn_test_agent_stop (g_ptr_array_index (fleet->agents, i), SIGTERM);
	ppn_test_fleet_stop_fleetd (fleet, SIGTERM);
	/* whatever the test did, no domain of its nodes outlives it */
	if (fleet->libvirt_uri != NULL && g_str_has_prefix (fleet->libvirt_uri, "qemu")) {
		ppn_test_destroy_leftovers (fleet, fleet->node_id);
		for (guint i = 0; fleet->agents != NULL && i < fleet->agents->len; i++)
			ppn_test_destroy_leftovers (fleet, ((PpnTestAgent *)g_ptr_array_index (fleet->agents, i))->node_id);
	}
	if (fleet->dir != NULL && g_getenv ("PPN_TEST_KEEP_LOGS") == NULL)
		ppn_test_rm_rf (fleet->dir);
	g_clear_pointer (&fleet->agents, g_ptr_array_unref);
	g_clear_object (&fleet->session);
	g_free (fleet->dir);
	g_free (fleet->ca_dir);
	g_free (fleet->image_dir);
	g_free (fleet->fleet_conf);
	g_free (fleet->token1);
	g_free (fleet->token2);
	g_free (fleet->node_id);
	g_free (fleet->libvirt_uri);
	g_free (fleet->url);
	g_free (fleet->agent_url);
	g_free (fleet);
}
