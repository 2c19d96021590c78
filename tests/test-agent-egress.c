/* The egress policy on real QEMU (TCG) through libvirtd: a guest under
 * egress nat reaches a listener on the host's loopback through 10.0.2.2;
 * under egress none (restrict=on) it does not, and its forwarded port 80
 * still answers. The guest is the test guest with its egress probe
 * (ppn.probe=10.0.2.2:PORT on the kernel command line of a catalog image
 * of its own; tools/build-test-guest), which connects once at boot, says
 * who it is, and prints PPN-PROBE ok|fail on its console. Both sides are
 * checked: what the guest saw, and what the host listener received. */
#include "config.h"

#define G_LOG_DOMAIN "ppn-test"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <string.h>
#include <unistd.h>

#include "ppn-agent-cleanup.h"
#include "ppn-domain-manager.h"
#include "ppn-domain-xml.h"
#include "ppn-error.h"
#include "ppn-forward.h"
#include "ppn-test-util.h"

#define LIBVIRT_URI "qemu:///system"
/* from the domains running to the guests answering; the creates
 * themselves can take minutes on a busy libvirtd */
#define GUEST_TIMEOUT_S 180
#define N_PORTS 8

/* what the host side saw: every line a guest sent to the listener */
typedef struct {
	GMutex lock;
	GPtrArray *lines;
	guint connections;
} Listener;

typedef struct {
	const gchar *vm_id;
	PpnEgress egress;
	PpnDomainInfo *info;
	GError *create_error;
	gboolean created;
	gboolean done_create;
	gchar *http_answer;
	gchar *probe; /* "ok", "fail", or NULL: the guest never said */
} Guest;

typedef struct {
	gchar *dir;
	gchar *node_id;
	PpnAgentConfig *config;
	PpnImageCatalog *catalog;
	PpnDomainManager *manager;
	GMainLoop *loop;
	GAsyncResult *res;
	guint pending;
} Fixture;

static void
test_virt_error_func (void *user_data, virErrorPtr err)
{
}

static gboolean
libvirt_available (void)
{
	virConnect *conn;

	virSetErrorFunc (NULL, test_virt_error_func);
	conn = virConnectOpen (LIBVIRT_URI);
	if (conn == NULL)
		return FALSE;
	virConnectClose (conn);
	return TRUE;
}

static gboolean
listener_incoming_cb (GThreadedSocketService *service,
		      GSocketConnection *connection,
		      GObject *source,
		      gpointer user_data)
{
	Listener *l = user_data;
	g_autoptr(GDataInputStream) in =
		g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));
	g_autofree gchar *line = NULL;

	g_mutex_lock (&l->lock);
	l->connections++;
	g_mutex_unlock (&l->lock);
	g_socket_set_timeout (g_socket_connection_get_socket (connection), 10);
	line = g_data_input_stream_read_line_utf8 (in, NULL, NULL, NULL);
	g_mutex_lock (&l->lock);
	g_ptr_array_add (l->lines, g_strdup (line != NULL ? line : "(nothing)"));
	g_mutex_unlock (&l->lock);
	return TRUE;
}

static gboolean
listener_heard_from (Listener *l, const gchar *vm_id)
{
	g_autofree gchar *expected = g_strdup_printf ("PPN-PROBE vm_id=%s", vm_id);
	g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&l->lock);

	for (guint i = 0; i < l->lines->len; i++) {
		if (g_strcmp0 (g_ptr_array_index (l->lines, i), expected) == 0)
			return TRUE;
	}
	return FALSE;
}

static void
run (const gchar *const *argv)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *err = NULL;
	gint status = 0;

	g_assert_true (g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
				     NULL, NULL, &err, &status, &error));
	g_assert_no_error (error);
	if (!g_spawn_check_wait_status (status, NULL))
		g_error ("%s failed: %s", argv[0], err);
}

/* the test guest, as a catalog image "probe-guest" whose command line
 * asks it to probe 10.0.2.2:@probe_port, the host's loopback */
static void
make_probe_image (const gchar *image_dir, guint16 probe_port)
{
	g_autofree gchar *tool = g_build_filename (PPN_TEST_SRCDIR, "..", "tools", "build-test-guest", NULL);
	g_autofree gchar *dir = g_build_filename (image_dir, "probe-guest", NULL);
	g_autofree gchar *conf_path = g_build_filename (dir, "image.conf", NULL);
	g_autofree gchar *conf = NULL;
	g_autoptr(GError) error = NULL;
	const gchar *argv[] = {tool, "--output", dir, NULL};

	run (argv);
	conf = g_strdup_printf ("[image]\nname=probe-guest\n"
				"description=test guest that probes 10.0.2.2:%u at boot\n"
				"kernel=vmlinuz\ninitrd=initrd.img\n"
				"cmdline=console=ttyS0 panic=-1 quiet ppn.probe=10.0.2.2:%u\n",
				probe_port, probe_port);
	g_assert_true (g_file_set_contents (conf_path, conf, -1, &error));
	g_assert_no_error (error);
	g_assert_cmpint (g_chmod (conf_path, 0644), ==, 0);
}

static void
async_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	Fixture *fx = user_data;

	fx->res = g_object_ref (res);
	g_main_loop_quit (fx->loop);
}

static void
create_cb (GObject *source, GAsyncResult *res, gpointer user_data)
{
	Guest *g = user_data;

	g->info = ppn_domain_manager_create_finish (PPN_DOMAIN_MANAGER (source), res, &g->create_error);
	g->created = g->info != NULL;
	g->done_create = TRUE;
}

static gboolean
spin_done_cb (gpointer user_data)
{
	gboolean *done = user_data;

	*done = TRUE;
	return G_SOURCE_REMOVE;
}

/* wait, while the main context runs: the listener accepts in it */
static void
spin (guint ms)
{
	gboolean done = FALSE;

	g_timeout_add (ms, spin_done_cb, &done);
	while (!done)
		g_main_context_iteration (NULL, TRUE);
}

static gchar *
http_get (guint16 port)
{
	g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", 2, NULL);
	g_autofree gchar *url = g_strdup_printf ("http://127.0.0.1:%u/", port);
	g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
	g_autoptr(GBytes) body = soup_session_send_and_read (session, msg, NULL, NULL);

	if (body == NULL || soup_message_get_status (msg) != 200)
		return NULL;
	return g_strstrip (g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body)));
}

/* "ok" or "fail" once the guest printed its probe's outcome */
static gchar *
console_probe (Fixture *fx, const gchar *vm_id)
{
	g_autofree gchar *base = g_strdup_printf ("ppn-%s.log", vm_id);
	g_autofree gchar *path = g_build_filename (fx->config->state_dir, "console", base, NULL);
	g_autofree gchar *log = NULL;

	if (!g_file_get_contents (path, &log, NULL, NULL))
		return NULL;
	if (strstr (log, "PPN-PROBE ok") != NULL)
		return g_strdup ("ok");
	if (strstr (log, "PPN-PROBE fail") != NULL)
		return g_strdup ("fail");
	return NULL;
}

static gchar *
domain_netdev (const gchar *vm_id)
{
	g_autofree gchar *domain = g_strconcat (PPN_DOMAIN_PREFIX, vm_id, NULL);
	g_autoptr(virConnect) conn = virConnectOpen (LIBVIRT_URI);
	g_autoptr(virDomain) dom = NULL;
	g_autofree gchar *xml = NULL;
	const gchar *start, *end;

	if (conn == NULL)
		return NULL;
	dom = virDomainLookupByName (conn, domain);
	if (dom == NULL)
		return NULL;
	xml = virDomainGetXMLDesc (dom, 0);
	start = xml != NULL ? strstr (xml, "value='user,") : NULL;
	if (start == NULL)
		return NULL;
	start += strlen ("value='");
	end = strchr (start, '\'');
	return end != NULL ? g_strndup (start, end - start) : NULL;
}

static void
test_egress (void)
{
	const gchar *run_id = g_getenv ("PPN_TEST_RUN_ID");
	Fixture fx_ = {NULL}, *fx = &fx_;
	Listener l = {0};
	Guest guests[] = {
		{.vm_id = NULL, .egress = PPN_EGRESS_NAT},
		{.vm_id = NULL, .egress = PPN_EGRESS_NONE},
	};
	g_autofree gchar *vm_id_nat = NULL;
	g_autofree gchar *vm_id_none = NULL;
	g_autofree gchar *netdev_nat = NULL;
	g_autofree gchar *netdev_none = NULL;
	g_autoptr(GThreadedSocketService) service = NULL;
	g_autoptr(GInetAddress) lo = NULL;
	g_autoptr(GSocketAddress) want = NULL;
	g_autoptr(GSocketAddress) bound = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GKeyFile) kf = g_key_file_new ();
	g_autoptr(PpnImage) image = NULL;
	g_autofree gchar *conf = NULL;
	g_autofree gchar *image_dir = NULL;
	g_autofree gchar *cmd = NULL;
	guint16 probe_port, base;
	gint64 t0, t_running;
	gboolean nat_heard, none_heard;

	if (!libvirt_available ()) {
		if (g_getenv ("PPN_TEST_REQUIRE_LIBVIRT") != NULL)
			g_error (LIBVIRT_URI " is not reachable and PPN_TEST_REQUIRE_LIBVIRT is set");
		g_test_skip (LIBVIRT_URI " is not reachable (start libvirtd)");
		return;
	}

	/* a host service on the loopback only, as any on a node would be */
	g_mutex_init (&l.lock);
	l.lines = g_ptr_array_new_with_free_func (g_free);
	service = G_THREADED_SOCKET_SERVICE (g_threaded_socket_service_new (4));
	lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	want = g_inet_socket_address_new (lo, 0);
	g_assert_true (g_socket_listener_add_address (G_SOCKET_LISTENER (service), want, G_SOCKET_TYPE_STREAM,
						      G_SOCKET_PROTOCOL_TCP, NULL, &bound, &error));
	g_assert_no_error (error);
	probe_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
	g_signal_connect (service, "run", G_CALLBACK (listener_incoming_cb), &l);
	g_socket_service_start (G_SOCKET_SERVICE (service));

	/* qemu runs as libvirt-qemu and must reach the state and image dirs */
	fx->dir = g_dir_make_tmp ("ppn-egress-XXXXXX", &error);
	g_assert_no_error (error);
	g_assert_cmpint (g_chmod (fx->dir, 0755), ==, 0);
	image_dir = g_build_filename (fx->dir, "images", NULL);
	g_assert_cmpint (g_mkdir_with_parents (image_dir, 0755), ==, 0);
	make_probe_image (image_dir, probe_port);

	/* the harness's sweep destroys domains of test-<run id>- nodes */
	fx->node_id = g_strdup_printf ("test-%s-egress-%u", run_id != NULL ? run_id : "manual", (guint)getpid ());
	base = ppn_test_free_port_range (N_PORTS);
	conf = g_strdup_printf ("[agent]\nnode-id=%s\nfleet-url=https://127.0.0.1:9443\n"
				"libvirt-uri=" LIBVIRT_URI "\nstate-dir=%s/state\nimage-dir=%s\n"
				"port-range=%u-%u\naccel=tcg\n",
				fx->node_id, fx->dir, image_dir, base, base + N_PORTS - 1);
	g_assert_true (g_key_file_load_from_data (kf, conf, -1, G_KEY_FILE_NONE, NULL));
	fx->config = ppn_agent_config_new_from_keyfile (kf, NULL, &error);
	g_assert_no_error (error);
	fx->catalog = ppn_image_catalog_new (fx->config->image_dir);
	image = ppn_image_catalog_lookup (fx->catalog, "probe-guest", &error);
	g_assert_no_error (error);
	g_test_message ("probe-guest cmdline: %s; host listener 127.0.0.1:%u", image->cmdline, probe_port);

	fx->loop = g_main_loop_new (NULL, FALSE);
	fx->manager = ppn_domain_manager_new (fx->config, &error);
	g_assert_no_error (error);
	ppn_domain_manager_start_async (fx->manager, NULL, async_cb, fx);
	g_main_loop_run (fx->loop);
	g_assert_true (ppn_domain_manager_start_finish (fx->manager, fx->res, &error));
	g_assert_no_error (error);
	g_clear_object (&fx->res);

	/* from here on nothing asserts until both domains are destroyed */
	vm_id_nat = g_strdup_printf ("%08x%08x", g_random_int (), g_random_int ());
	vm_id_none = g_strdup_printf ("%08x%08x", g_random_int (), g_random_int ());
	guests[0].vm_id = vm_id_nat;
	guests[1].vm_id = vm_id_none;
	for (guint i = 0; i < G_N_ELEMENTS (guests); i++) {
		g_autoptr(PpnDomainRequest) req = ppn_domain_request_new ();

		req->vm_id = g_strdup (guests[i].vm_id);
		req->tenant = g_strdup ("alice");
		req->name = g_strdup (guests[i].egress == PPN_EGRESS_NONE ? "egress-none" : "egress-nat");
		req->image = g_strdup ("probe-guest");
		req->egress = guests[i].egress;
		g_ptr_array_add (req->forwards, ppn_forward_new (80, "tcp"));
		ppn_domain_manager_create_async (fx->manager, req, image, NULL, create_cb, &guests[i]);
	}
	t0 = g_get_monotonic_time ();
	while (!guests[0].done_create || !guests[1].done_create)
		g_main_context_iteration (NULL, TRUE);
	t_running = g_get_monotonic_time ();
	g_test_message ("both domains created in %.1f s", (t_running - t0) / (gdouble)G_USEC_PER_SEC);
	if (guests[0].created)
		netdev_nat = domain_netdev (vm_id_nat);
	if (guests[1].created)
		netdev_none = domain_netdev (vm_id_none);

	/* each guest answers on its forward and says how its probe went */
	while (g_get_monotonic_time () - t_running < GUEST_TIMEOUT_S * G_USEC_PER_SEC) {
		gboolean waiting = FALSE;

		for (guint i = 0; i < G_N_ELEMENTS (guests); i++) {
			Guest *g = &guests[i];
			if (!g->created)
				continue;
			if (g->http_answer == NULL || g_strcmp0 (g->http_answer, g->vm_id) != 0) {
				PpnForward *fwd = g_ptr_array_index (g->info->forwards, 0);
				g_free (g->http_answer);
				g->http_answer = http_get (fwd->host_port);
			}
			if (g->probe == NULL)
				g->probe = console_probe (fx, g->vm_id);
			if (g->probe == NULL || g_strcmp0 (g->http_answer, g->vm_id) != 0)
				waiting = TRUE;
		}
		if (!waiting)
			break;
		spin (500);
	}
	/* a late connection from the restricted guest would still count */
	spin (1000);
	nat_heard = listener_heard_from (&l, vm_id_nat);
	none_heard = listener_heard_from (&l, vm_id_none);
	g_test_message ("%.1f s after they ran: nat guest: forward answered '%s', probe %s, listener heard it: %s",
			(g_get_monotonic_time () - t_running) / (gdouble)G_USEC_PER_SEC,
			guests[0].http_answer != NULL ? guests[0].http_answer : "(nothing)",
			guests[0].probe != NULL ? guests[0].probe : "(not reported)", nat_heard ? "yes" : "no");
	g_test_message ("none guest: forward answered '%s', probe %s, listener heard it: %s",
			guests[1].http_answer != NULL ? guests[1].http_answer : "(nothing)",
			guests[1].probe != NULL ? guests[1].probe : "(not reported)", none_heard ? "yes" : "no");
	g_test_message ("netdev nat: %s", netdev_nat != NULL ? netdev_nat : "(none)");
	g_test_message ("netdev none: %s", netdev_none != NULL ? netdev_none : "(none)");
	g_mutex_lock (&l.lock);
	g_test_message ("listener: %u connections", l.connections);
	for (guint i = 0; i < l.lines->len; i++)
		g_test_message ("listener got: %s", (const gchar *)g_ptr_array_index (l.lines, i));
	g_mutex_unlock (&l.lock);

	for (guint i = 0; i < G_N_ELEMENTS (guests); i++) {
		g_autoptr(GError) destroy_error = NULL;

		if (!guests[i].created)
			continue;
		ppn_domain_manager_destroy_async (fx->manager, guests[i].vm_id, NULL, async_cb, fx);
		g_main_loop_run (fx->loop);
		if (!ppn_domain_manager_destroy_finish (fx->manager, fx->res, &destroy_error))
			g_warning ("cannot destroy ppn-%s: %s", guests[i].vm_id, destroy_error->message);
		g_clear_object (&fx->res);
	}
	g_socket_service_stop (G_SOCKET_SERVICE (service));
	g_socket_listener_close (G_SOCKET_LISTENER (service));

	/* now the verdict */
	for (guint i = 0; i < G_N_ELEMENTS (guests); i++) {
		g_assert_no_error (guests[i].create_error);
		g_assert_cmpstr (guests[i].info->egress, ==, i == 0 ? "nat" : "none");
		/* forwards into the guest work under either policy */
		g_assert_cmpstr (guests[i].http_answer, ==, guests[i].vm_id);
	}
	g_assert_nonnull (netdev_nat);
	g_assert_nonnull (netdev_none);
	g_assert_null (strstr (netdev_nat, "restrict"));
	g_assert_nonnull (strstr (netdev_none, ",restrict=on"));
	/* nat: the guest reached the host's loopback; none: it did not */
	g_assert_cmpstr (guests[0].probe, ==, "ok");
	g_assert_true (nat_heard);
	g_assert_cmpstr (guests[1].probe, ==, "fail");
	g_assert_false (none_heard);

	for (guint i = 0; i < G_N_ELEMENTS (guests); i++) {
		g_clear_pointer (&guests[i].info, ppn_domain_info_free);
		g_free (guests[i].http_answer);
		g_free (guests[i].probe);
	}
	g_clear_object (&fx->manager);
	ppn_image_catalog_free (fx->catalog);
	ppn_agent_config_free (fx->config);
	g_main_loop_unref (fx->loop);
	cmd = g_strdup_printf ("rm -rf '%s'", fx->dir);
	g_assert_cmpint (system (cmd), ==, 0);
	g_free (fx->dir);
	g_free (fx->node_id);
	g_ptr_array_unref (l.lines);
	g_mutex_clear (&l.lock);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/agent/egress/restrict-on-qemu", test_egress);
	return g_test_run ();
}
