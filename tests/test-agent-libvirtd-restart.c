/* libvirtd stops and starts again under a real ppn-agentd with a real
 * QEMU guest running (TCG, qemu:///system). The agent heartbeats to a
 * throwaway fake fleet in this process (mutual TLS), which records every
 * heartbeat. While libvirtd is gone: heartbeats go on, marked
 * "libvirt": "unreachable"; a create answers 503 at once and leaves
 * nothing; the guest's QEMU is untouched and its forwarded port still
 * answers with its VM id. Once libvirtd is back: heartbeats say "ok" and
 * list the same VM, same tenant, same host port, same libvirt domain id;
 * a new create gets another port. Then the agent is killed (-9) and
 * started again: it finds the VM and does not hand out its port.
 *
 * The body runs in a subprocess: whatever happens to it (an assertion
 * aborts), the parent starts libvirtd again if it is not running and
 * destroys this run's domains. */
#include "config.h"

#define G_LOG_DOMAIN "ppn-test"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>

#include "ppn-error.h"
#include "ppn-http.h"
#include "ppn-test-util.h"
#include "ppn-tls.h"

#define LIBVIRT_URI "qemu:///system"
#define GUEST_TIMEOUT_S 180
#define BODY_TIMEOUT_S 800

/* ---- the fake fleet: records heartbeats, in a thread of its own ------ */

typedef struct {
	gint64 at; /* monotonic */
	gchar *libvirt;
	JsonNode *body;
} Heartbeat;

typedef struct {
	GMutex lock;
	GPtrArray *beats; /* of Heartbeat */
	GMainContext *context;
	GMainLoop *loop;
	GThread *thread;
	GTlsCertificate *cert;
	GTlsDatabase *ca;
	SoupServer *server;
	guint16 port;
	gint ready;
} FakeFleet;

static void
heartbeat_free (Heartbeat *hb)
{
	g_free (hb->libvirt);
	json_node_unref (hb->body);
	g_free (hb);
}

static void
fake_fleet_handler (SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
		    gpointer user_data)
{
	FakeFleet *f = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) body = NULL;
	g_autoptr(JsonNode) answer = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();
	Heartbeat *hb;

	if (g_strcmp0 (path, "/mesh/v1/heartbeat") != 0) {
		soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
		return;
	}
	body = ppn_http_read_json (msg, 1 << 20, &error);
	if (body == NULL) {
		ppn_http_reply_error (msg, error);
		return;
	}
	hb = g_new0 (Heartbeat, 1);
	hb->at = g_get_monotonic_time ();
	hb->libvirt = g_strdup (json_object_get_string_member_with_default (json_node_get_object (body), "libvirt",
									    "(none)"));
	hb->body = g_steal_pointer (&body);
	g_mutex_lock (&f->lock);
	g_ptr_array_add (f->beats, hb);
	g_mutex_unlock (&f->lock);
	g_assert_true (json_parser_load_from_data (parser, "{\"interval\": 1}", -1, NULL));
	answer = json_node_copy (json_parser_get_root (parser));
	ppn_http_reply_json (msg, SOUP_STATUS_OK, answer);
}

static gpointer
fake_fleet_thread (gpointer data)
{
	FakeFleet *f = data;
	g_autoptr(GError) error = NULL;

	g_main_context_push_thread_default (f->context);
	f->server = ppn_http_server_new (f->cert, f->ca, &error);
	g_assert_no_error (error);
	soup_server_add_handler (f->server, "/", fake_fleet_handler, f, NULL);
	g_assert_true (ppn_http_listen (f->server, "127.0.0.1:0", &f->port, &error));
	g_assert_no_error (error);
	g_atomic_int_set (&f->ready, 1);
	g_main_loop_run (f->loop);
	soup_server_disconnect (f->server);
	g_clear_object (&f->server);
	g_main_context_pop_thread_default (f->context);
	return NULL;
}

static FakeFleet *
fake_fleet_new (PpnTestFleet *fleet)
{
	FakeFleet *f = g_new0 (FakeFleet, 1);
	g_autofree gchar *cert = g_build_filename (fleet->dir, "fleet.pem", NULL);
	g_autofree gchar *key = g_build_filename (fleet->dir, "fleet-key.pem", NULL);
	g_autofree gchar *ca = g_build_filename (fleet->ca_dir, "ca.pem", NULL);
	g_autoptr(GError) error = NULL;

	g_mutex_init (&f->lock);
	f->beats = g_ptr_array_new_with_free_func ((GDestroyNotify)heartbeat_free);
	f->cert = ppn_tls_load_certificate (cert, key, &error);
	g_assert_no_error (error);
	f->ca = ppn_tls_load_ca (ca, &error);
	g_assert_no_error (error);
	f->context = g_main_context_new ();
	f->loop = g_main_loop_new (f->context, FALSE);
	f->thread = g_thread_new ("fake-fleet", fake_fleet_thread, f);
	while (!g_atomic_int_get (&f->ready))
		g_usleep (10000);
	return f;
}

static gboolean
quit_cb (gpointer user_data)
{
	g_main_loop_quit (user_data);
	return G_SOURCE_REMOVE;
}

static void
fake_fleet_free (FakeFleet *f)
{
	g_main_context_invoke (f->context, quit_cb, f->loop);
	g_thread_join (f->thread);
	g_main_loop_unref (f->loop);
	g_main_context_unref (f->context);
	g_clear_object (&f->cert);
	g_clear_object (&f->ca);
	g_ptr_array_unref (f->beats);
	g_mutex_clear (&f->lock);
	g_free (f);
}

/* the first heartbeat at or after @since saying libvirt @state, as a new
 * reference to its body (NULL after @timeout_s); *@at: when it came */
static JsonNode *
fake_fleet_wait (FakeFleet *f, gint64 since, const gchar *state, guint timeout_s, gint64 *at)
{
	gint64 deadline = g_get_monotonic_time () + (gint64)timeout_s * G_USEC_PER_SEC;

	while (g_get_monotonic_time () < deadline) {
		g_mutex_lock (&f->lock);
		for (guint i = 0; i < f->beats->len; i++) {
			Heartbeat *hb = g_ptr_array_index (f->beats, i);
			if (hb->at >= since && g_strcmp0 (hb->libvirt, state) == 0) {
				JsonNode *body = json_node_ref (hb->body);
				if (at != NULL)
					*at = hb->at;
				g_mutex_unlock (&f->lock);
				return body;
			}
		}
		g_mutex_unlock (&f->lock);
		g_usleep (50000);
	}
	return NULL;
}

static guint
fake_fleet_count (FakeFleet *f, gint64 since, const gchar *state)
{
	g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&f->lock);
	guint n = 0;

	for (guint i = 0; i < f->beats->len; i++) {
		Heartbeat *hb = g_ptr_array_index (f->beats, i);
		if (hb->at >= since && g_strcmp0 (hb->libvirt, state) == 0)
			n++;
	}
	return n;
}

/* ---- helpers ----------------------------------------------------------- */

static gchar *
run_out (const gchar *const *argv, gboolean *ok)
{
	gint status = -1;
	gchar *out = ppn_test_run (argv, &status);

	if (ok != NULL)
		*ok = g_spawn_check_wait_status (status, NULL);
	return out;
}

static gint
libvirtd_pid (void)
{
	const gchar *argv[] = {"pgrep", "-x", "libvirtd", NULL};
	gboolean ok = FALSE;
	g_autofree gchar *out = run_out (argv, &ok);

	return ok && out != NULL ? (gint)g_ascii_strtoll (out, NULL, 10) : 0;
}

static gboolean
virsh_answers (void)
{
	const gchar *argv[] = {"timeout", "10", "virsh", "-c", LIBVIRT_URI, "version", NULL};
	gboolean ok = FALSE;
	g_autofree gchar *out = run_out (argv, &ok);

	return ok;
}

static void
libvirtd_stop (void)
{
	gint pid = libvirtd_pid ();
	gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

	g_assert_cmpint (pid, >, 0);
	g_assert_cmpint (kill (pid, SIGTERM), ==, 0);
	while (kill (pid, 0) == 0 && g_get_monotonic_time () < deadline)
		g_usleep (50000);
	g_assert_cmpint (kill (pid, 0), !=, 0);
}

/* starts libvirtd when it is not running and waits until it answers */
static gboolean
libvirtd_ensure (void)
{
	gint64 deadline = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;

	if (libvirtd_pid () == 0) {
		const gchar *argv[] = {"libvirtd", "-d", NULL};
		g_autofree gchar *out = run_out (argv, NULL);
	}
	while (g_get_monotonic_time () < deadline) {
		if (virsh_answers ())
			return TRUE;
		g_usleep (200000);
	}
	return FALSE;
}

static gchar *
virsh_domid (const gchar *domain)
{
	const gchar *argv[] = {"virsh", "-c", LIBVIRT_URI, "domid", domain, NULL};
	gchar *out = run_out (argv, NULL);

	return out != NULL ? g_strstrip (out) : NULL;
}

static gint
qemu_pid (const gchar *domain)
{
	g_autofree gchar *path = g_strdup_printf ("/run/libvirt/qemu/%s.pid", domain);
	g_autofree gchar *contents = NULL;

	if (!g_file_get_contents (path, &contents, NULL, NULL))
		return 0;
	return (gint)g_ascii_strtoll (contents, NULL, 10);
}

static gboolean
guest_answers (guint16 port, const gchar *vm_id, guint timeout_s)
{
	gint64 deadline = g_get_monotonic_time () + (gint64)timeout_s * G_USEC_PER_SEC;

	while (g_get_monotonic_time () < deadline) {
		g_autofree gchar *answer = ppn_test_http_get (port, NULL);
		if (g_strcmp0 (answer, vm_id) == 0)
			return TRUE;
		g_usleep (200000);
	}
	return FALSE;
}

static gchar *
random_vm_id (void)
{
	return g_strdup_printf ("%08x%08x", g_random_int (), g_random_int ());
}

/* POST /agent/v1/domains; the first forward's host port in *@port */
static guint
agent_create (PpnTestFleet *fleet, const gchar *vm_id, guint16 *port, JsonNode **reply)
{
	g_autofree gchar *body = g_strdup_printf (
		"{\"vm_id\": \"%s\", \"tenant\": \"alice\", \"name\": \"restart\", \"image\": \"test-guest\", "
		"\"vcpus\": 1, \"memory_mib\": 256, \"port_forwards\": [{\"guest_port\": 80, \"proto\": \"tcp\"}]}",
		vm_id);
	guint status = 0;
	g_autoptr(JsonNode) node = ppn_test_agent_call (fleet, "POST", "/agent/v1/domains", body, &status);

	if (status == 201 && port != NULL) {
		JsonObject *obj = json_node_get_object (node);
		JsonObject *fwd = json_array_get_object_element (json_object_get_array_member (obj, "port_forwards"), 0);
		*port = (guint16)json_object_get_int_member (fwd, "host_port");
	}
	if (reply != NULL)
		*reply = g_steal_pointer (&node);
	return status;
}

static guint
agent_destroy (PpnTestFleet *fleet, const gchar *vm_id)
{
	g_autofree gchar *path = g_strdup_printf ("/agent/v1/domains/%s", vm_id);
	guint status = 0;
	g_autoptr(JsonNode) node = ppn_test_agent_call (fleet, "DELETE", path, NULL, &status);

	return status;
}

/* the heartbeat's entry for @vm_id, or NULL */
static JsonObject *
find_domain (JsonNode *heartbeat, const gchar *vm_id)
{
	JsonArray *domains = json_object_get_array_member (json_node_get_object (heartbeat), "domains");

	for (guint i = 0; i < json_array_get_length (domains); i++) {
		JsonObject *d = json_array_get_object_element (domains, i);
		if (g_strcmp0 (json_object_get_string_member (d, "vm_id"), vm_id) == 0)
			return d;
	}
	return NULL;
}

static gint64
entry_port (JsonObject *d)
{
	return json_object_get_int_member (
		json_array_get_object_element (json_object_get_array_member (d, "port_forwards"), 0), "host_port");
}

static gint64
free_ports (JsonNode *heartbeat)
{
	return json_object_get_int_member (
		json_object_get_object_member (json_node_get_object (heartbeat), "capacity"), "free_ports");
}

/* ---- the test ---------------------------------------------------------- */

static void
restart_body (void)
{
	PpnTestFleetOptions opts = {.libvirt_uri = LIBVIRT_URI, .real_guest = TRUE, .max_vms = 4};
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnTestFleet) fleet = NULL;
	g_autoptr(JsonNode) beat = NULL;
	g_autoptr(JsonNode) refused = NULL;
	g_autofree gchar *vm_a = random_vm_id ();
	g_autofree gchar *vm_b = random_vm_id ();
	g_autofree gchar *vm_c = random_vm_id ();
	g_autofree gchar *vm_d = random_vm_id ();
	g_autofree gchar *dom_a = g_strconcat ("ppn-", vm_a, NULL);
	g_autofree gchar *domid_before = NULL;
	g_autofree gchar *domid_after = NULL;
	g_autoptr(GPtrArray) doms = NULL;
	FakeFleet *f;
	JsonObject *entry;
	guint16 port_a = 0, port_c = 0, port_d = 0;
	gint64 t, t_kill, t_gone, t_degraded, t_start, t_answers, t_ok, t_create;
	gint64 free_before;
	gint pid_a;

	fleet = ppn_test_fleet_new (&opts, &error);
	g_assert_no_error (error);
	f = fake_fleet_new (fleet);
	fleet->mesh_port = f->port;
	ppn_test_fleet_start_agentd (fleet, &error);
	g_assert_no_error (error);
	beat = fake_fleet_wait (f, 0, "ok", 60, NULL);
	g_assert_nonnull (beat);
	g_clear_pointer (&beat, json_node_unref);

	/* a guest, answering on its forwarded port */
	g_assert_cmpuint (agent_create (fleet, vm_a, &port_a, NULL), ==, 201);
	g_assert_true (guest_answers (port_a, vm_a, GUEST_TIMEOUT_S));
	pid_a = qemu_pid (dom_a);
	g_assert_cmpint (pid_a, >, 0);
	domid_before = virsh_domid (dom_a);
	t = g_get_monotonic_time ();
	beat = fake_fleet_wait (f, t, "ok", 30, NULL);
	g_assert_nonnull (beat);
	g_assert_nonnull (find_domain (beat, vm_a));
	free_before = free_ports (beat);
	g_clear_pointer (&beat, json_node_unref);

	/* libvirtd goes away */
	t_kill = g_get_monotonic_time ();
	libvirtd_stop ();
	t_gone = g_get_monotonic_time ();
	beat = fake_fleet_wait (f, t_gone, "unreachable", 30, &t_degraded);
	g_assert_nonnull (beat);
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_node_get_object (beat), "domains")),
			  ==, 0);
	g_clear_pointer (&beat, json_node_unref);
	g_printerr ("# libvirtd gone %.2f s after SIGTERM; first degraded heartbeat %.2f s after that\n",
		    (t_gone - t_kill) / 1e6, (t_degraded - t_gone) / 1e6);

	/* a create fails at once and leaves nothing */
	t = g_get_monotonic_time ();
	g_assert_cmpuint (agent_create (fleet, vm_b, NULL, &refused), ==, 503);
	t_create = g_get_monotonic_time () - t;
	g_assert_cmpint (t_create, <, 5 * G_USEC_PER_SEC);
	g_assert_cmpstr (json_object_get_string_member (
				 json_object_get_object_member (json_node_get_object (refused), "error"), "code"),
			 ==, "unavailable");
	g_printerr ("# create while libvirtd is down: 503 in %.0f ms: %s\n", t_create / 1e3,
		    json_object_get_string_member (
			    json_object_get_object_member (json_node_get_object (refused), "error"), "message"));

	/* heartbeats keep coming, degraded, with no port taken by the refused create */
	t = g_get_monotonic_time ();
	beat = fake_fleet_wait (f, t, "unreachable", 30, NULL);
	g_assert_nonnull (beat);
	g_assert_cmpint (free_ports (beat), ==, free_before);
	g_clear_pointer (&beat, json_node_unref);
	g_usleep (3 * G_USEC_PER_SEC);
	g_assert_cmpuint (fake_fleet_count (f, t_gone, "unreachable"), >=, 3);
	g_assert_cmpuint (fake_fleet_count (f, t_gone, "ok"), ==, 0);

	/* the guest's QEMU is untouched */
	g_assert_cmpint (kill (pid_a, 0), ==, 0);
	g_assert_true (guest_answers (port_a, vm_a, 10));

	/* libvirtd comes back */
	{
		const gchar *argv[] = {"libvirtd", "-d", NULL};
		g_autofree gchar *out = NULL;
		t_start = g_get_monotonic_time ();
		out = run_out (argv, NULL);
	}
	g_assert_true (libvirtd_ensure ());
	t_answers = g_get_monotonic_time ();
	beat = fake_fleet_wait (f, t_answers, "ok", 60, &t_ok);
	g_assert_nonnull (beat);
	g_printerr ("# libvirtd answers %.2f s after start; first ok heartbeat %.2f s after that\n",
		    (t_answers - t_start) / 1e6, (t_ok - t_answers) / 1e6);
	entry = find_domain (beat, vm_a);
	g_assert_nonnull (entry);
	g_assert_cmpstr (json_object_get_string_member (entry, "tenant"), ==, "alice");
	g_assert_cmpstr (json_object_get_string_member (entry, "name"), ==, "restart");
	g_assert_cmpstr (json_object_get_string_member (entry, "image"), ==, "test-guest");
	g_assert_cmpint (json_object_get_int_member (entry, "vcpus"), ==, 1);
	g_assert_cmpint (json_object_get_int_member (entry, "memory_mib"), ==, 256);
	g_assert_cmpint (entry_port (entry), ==, port_a);
	g_assert_null (find_domain (beat, vm_b));
	g_clear_pointer (&beat, json_node_unref);

	/* the same domain, not a redefined or second one */
	domid_after = virsh_domid (dom_a);
	g_assert_cmpstr (domid_after, ==, domid_before);
	g_assert_cmpint (qemu_pid (dom_a), ==, pid_a);
	doms = ppn_test_node_domains (fleet);
	g_assert_cmpuint (doms->len, ==, 1);
	g_assert_cmpstr (g_ptr_array_index (doms, 0), ==, dom_a);
	g_clear_pointer (&doms, g_ptr_array_unref);

	/* a new create gets another port */
	g_assert_cmpuint (agent_create (fleet, vm_c, &port_c, NULL), ==, 201);
	g_assert_cmpuint (port_c, !=, port_a);
	g_assert_cmpuint (agent_destroy (fleet, vm_c), ==, 204);

	/* the agent dies (-9) and starts again: it finds the VM, keeps its port */
	ppn_test_fleet_stop_agentd (fleet, SIGKILL);
	t = g_get_monotonic_time ();
	ppn_test_fleet_start_agentd (fleet, &error);
	g_assert_no_error (error);
	beat = fake_fleet_wait (f, t, "ok", 60, NULL);
	g_assert_nonnull (beat);
	entry = find_domain (beat, vm_a);
	g_assert_nonnull (entry);
	g_assert_cmpint (entry_port (entry), ==, port_a);
	g_clear_pointer (&beat, json_node_unref);
	g_assert_cmpuint (agent_create (fleet, vm_d, &port_d, NULL), ==, 201);
	g_assert_cmpuint (port_d, !=, port_a);
	g_assert_cmpuint (agent_destroy (fleet, vm_d), ==, 204);
	g_assert_true (guest_answers (port_a, vm_a, 10));
	domid_after = (g_free (domid_after), virsh_domid (dom_a));
	g_assert_cmpstr (domid_after, ==, domid_before);

	g_assert_cmpuint (agent_destroy (fleet, vm_a), ==, 204);
	doms = ppn_test_node_domains (fleet);
	g_assert_cmpuint (doms->len, ==, 0);

	ppn_test_fleet_stop_agentd (fleet, SIGTERM);
	fake_fleet_free (f);
}

/* whatever the body did, libvirtd runs again and no domain of this run
 * is left */
static void
sweep_domains (const gchar *run_id)
{
	const gchar *list_argv[] = {"virsh", "-q", "-c", LIBVIRT_URI, "list", "--all", "--name", NULL};
	g_autofree gchar *out = run_out (list_argv, NULL);
	g_auto(GStrv) names = g_strsplit (out != NULL ? out : "", "\n", -1);
	g_autofree gchar *needle = g_strdup_printf ("<ppn:node>test-%s-", run_id);

	for (guint i = 0; names[i] != NULL; i++) {
		const gchar *name = g_strstrip (names[i]);
		const gchar *dump_argv[] = {"virsh", "-c", LIBVIRT_URI, "dumpxml", name, NULL};
		const gchar *destroy_argv[] = {"virsh", "-c", LIBVIRT_URI, "destroy", name, NULL};
		g_autofree gchar *xml = NULL;

		if (!g_str_has_prefix (name, "ppn-"))
			continue;
		xml = run_out (dump_argv, NULL);
		if (xml != NULL && strstr (xml, needle) != NULL) {
			g_autofree gchar *ignored = run_out (destroy_argv, NULL);
			g_printerr ("# destroyed leftover domain %s\n", name);
		}
	}
}

static void
test_libvirtd_restart (void)
{
	g_autofree gchar *run_id = NULL;
	gboolean restored;

	if (g_test_subprocess ()) {
		restart_body ();
		return;
	}
	if (!ppn_test_libvirt_available (LIBVIRT_URI) || libvirtd_pid () == 0) {
		if (g_getenv ("PPN_TEST_REQUIRE_LIBVIRT") != NULL)
			g_error (LIBVIRT_URI " (through libvirtd) is not reachable and PPN_TEST_REQUIRE_LIBVIRT is set");
		g_test_skip (LIBVIRT_URI " through a running libvirtd is not reachable (start libvirtd -d)");
		return;
	}
	/* the node ids of the body's fleet start with test-RUN_ID- */
	if (g_getenv ("PPN_TEST_RUN_ID") == NULL) {
		g_autofree gchar *id = g_strdup_printf ("restart%u", (guint)getpid ());
		g_setenv ("PPN_TEST_RUN_ID", id, TRUE);
	}
	run_id = g_strdup (g_getenv ("PPN_TEST_RUN_ID"));
	g_test_trap_subprocess (NULL, (guint64)BODY_TIMEOUT_S * G_USEC_PER_SEC,
				G_TEST_SUBPROCESS_INHERIT_STDERR);
	restored = libvirtd_ensure ();
	if (!restored)
		g_printerr ("# libvirtd did not come back: start it with libvirtd -d\n");
	sweep_domains (run_id);
	g_test_trap_assert_passed ();
	g_assert_true (restored);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/agent/libvirtd-restart", test_libvirtd_restart);
	return g_test_run ();
}
