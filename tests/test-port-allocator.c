#include "config.h"

#define G_LOG_DOMAIN "ppn-test"

#include <gio/gio.h>

#include "ppn-error.h"
#include "ppn-port-allocator.h"

/* a small range of ports nobody else on this machine uses right now */
static guint16
test_free_base (guint count)
{
	for (guint attempt = 0; attempt < 50; attempt++) {
		guint16 base = (guint16)g_random_int_range (30000, 60000);
		g_autoptr(PpnPortAllocator) pa = ppn_port_allocator_new ("127.0.0.1", base, base + count - 1, NULL);
		gboolean all = TRUE;

		for (guint i = 0; i < count; i++) {
			guint16 port = 0;
			if (!ppn_port_allocator_allocate (pa, "tcp", &port, NULL) || port != base + i) {
				all = FALSE;
				break;
			}
		}
		if (all)
			return base;
	}
	g_assert_not_reached ();
	return 0;
}

static void
test_exhaustion (void)
{
	guint16 base = test_free_base (4);
	g_autoptr(PpnPortAllocator) pa = ppn_port_allocator_new ("127.0.0.1", base, base + 3, NULL);
	g_autoptr(GHashTable) seen = g_hash_table_new (NULL, NULL);
	g_autoptr(GError) error = NULL;
	guint16 port = 0;

	g_assert_cmpuint (ppn_port_allocator_count_free (pa), ==, 4);
	for (guint i = 0; i < 4; i++) {
		g_assert_true (ppn_port_allocator_allocate (pa, i % 2 ? "udp" : "tcp", &port, &error));
		g_assert_no_error (error);
		g_assert_cmpuint (port, >=, base);
		g_assert_cmpuint (port, <=, base + 3);
		/* no port is handed out twice */
		g_assert_true (g_hash_table_add (seen, GUINT_TO_POINTER ((guint)port)));
	}
	g_assert_cmpuint (ppn_port_allocator_count_free (pa), ==, 0);
	g_assert_false (ppn_port_allocator_allocate (pa, "tcp", &port, &error));
	g_assert_error (error, PPN_ERROR, PPN_ERROR_NO_CAPACITY);
}

/* a just-freed port is not handed back at once: round robin */
static void
test_release_order (void)
{
	guint16 base = test_free_base (4);
	g_autoptr(PpnPortAllocator) pa = ppn_port_allocator_new ("127.0.0.1", base, base + 3, NULL);
	guint16 a = 0, b = 0, c = 0, d = 0;

	g_assert_true (ppn_port_allocator_allocate (pa, "tcp", &a, NULL));
	g_assert_true (ppn_port_allocator_allocate (pa, "tcp", &b, NULL));
	g_assert_cmpuint (a, ==, base);
	g_assert_cmpuint (b, ==, base + 1);
	ppn_port_allocator_release (pa, a);
	g_assert_cmpuint (ppn_port_allocator_count_free (pa), ==, 3);
	g_assert_true (ppn_port_allocator_allocate (pa, "tcp", &c, NULL));
	g_assert_cmpuint (c, ==, base + 2);
	g_assert_true (ppn_port_allocator_allocate (pa, "tcp", &c, NULL));
	g_assert_cmpuint (c, ==, base + 3);
	/* wrapped around: now the freed one comes back */
	g_assert_true (ppn_port_allocator_allocate (pa, "tcp", &d, NULL));
	g_assert_cmpuint (d, ==, base);
	/* releasing twice, or a port out of range, changes nothing */
	ppn_port_allocator_release (pa, b);
	ppn_port_allocator_release (pa, b);
	ppn_port_allocator_release (pa, 1);
	g_assert_cmpuint (ppn_port_allocator_count_free (pa), ==, 1);
}

/* a port another program holds is skipped, for tcp and for udp */
static void
test_held_port_skipped (void)
{
	guint16 base = test_free_base (3);
	g_autoptr(PpnPortAllocator) pa = ppn_port_allocator_new ("127.0.0.1", base, base + 2, NULL);
	g_autoptr(GSocket) tcp = NULL;
	g_autoptr(GSocket) udp = NULL;
	g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) tcp_addr = g_inet_socket_address_new (lo, base);
	g_autoptr(GSocketAddress) udp_addr = g_inet_socket_address_new (lo, base + 1);
	g_autoptr(GError) error = NULL;
	guint16 port = 0;

	tcp = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
	g_assert_no_error (error);
	g_assert_true (g_socket_bind (tcp, tcp_addr, TRUE, &error));
	g_assert_true (g_socket_listen (tcp, &error));
	udp = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);
	g_assert_no_error (error);
	g_assert_true (g_socket_bind (udp, udp_addr, FALSE, &error));

	g_assert_true (ppn_port_allocator_allocate (pa, "tcp", &port, &error));
	g_assert_cmpuint (port, ==, base + 1); /* base is held by a tcp listener */
	ppn_port_allocator_release (pa, port);
	g_assert_true (ppn_port_allocator_allocate (pa, "udp", &port, &error));
	g_assert_cmpuint (port, ==, base + 2); /* base + 1 is held for udp */
	g_assert_false (ppn_port_allocator_allocate (pa, "udp", &port, &error) && port == base + 1);
}

/* ports a running domain holds (found after a restart) are not handed out */
static void
test_mark_used (void)
{
	guint16 base = test_free_base (3);
	g_autoptr(PpnPortAllocator) pa = ppn_port_allocator_new ("127.0.0.1", base, base + 2, NULL);
	g_autoptr(GHashTable) keep = g_hash_table_new (NULL, NULL);
	guint16 port = 0;

	g_assert_true (ppn_port_allocator_mark_used (pa, base));
	g_assert_true (ppn_port_allocator_mark_used (pa, base)); /* idempotent */
	g_assert_true (ppn_port_allocator_mark_used (pa, base + 2));
	g_assert_false (ppn_port_allocator_mark_used (pa, base + 3));
	g_assert_true (ppn_port_allocator_is_used (pa, base));
	g_assert_cmpuint (ppn_port_allocator_count_free (pa), ==, 1);
	g_assert_true (ppn_port_allocator_allocate (pa, "tcp", &port, NULL));
	g_assert_cmpuint (port, ==, base + 1);
	g_assert_false (ppn_port_allocator_allocate (pa, "tcp", &port, NULL));

	/* reset keeps exactly the given ports */
	g_hash_table_add (keep, GUINT_TO_POINTER ((guint)base + 2));
	g_assert_cmpuint (ppn_port_allocator_reset (pa, keep), ==, 2);
	g_assert_cmpuint (ppn_port_allocator_count_free (pa), ==, 2);
	g_assert_true (ppn_port_allocator_is_used (pa, base + 2));
}

static void
test_bad_address (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(PpnPortAllocator) pa = ppn_port_allocator_new ("localhost", 20000, 20001, &error);

	g_assert_null (pa);
	g_assert_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST);
}

typedef struct {
	PpnPortAllocator *pa;
	GMutex lock;
	GHashTable *seen;
	gboolean duplicate;
} ThreadData;

static gpointer
test_thread (gpointer user_data)
{
	ThreadData *td = user_data;

	for (guint i = 0; i < 8; i++) {
		guint16 port = 0;
		if (!ppn_port_allocator_allocate (td->pa, "tcp", &port, NULL))
			break;
		g_mutex_lock (&td->lock);
		if (!g_hash_table_add (td->seen, GUINT_TO_POINTER ((guint)port)))
			td->duplicate = TRUE;
		g_mutex_unlock (&td->lock);
	}
	return NULL;
}

static void
test_threads (void)
{
	guint16 base = test_free_base (32);
	ThreadData td = {0};
	GThread *threads[4];

	td.pa = ppn_port_allocator_new ("127.0.0.1", base, base + 31, NULL);
	td.seen = g_hash_table_new (NULL, NULL);
	g_mutex_init (&td.lock);
	for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
		threads[i] = g_thread_new ("alloc", test_thread, &td);
	for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
		g_thread_join (threads[i]);
	g_assert_false (td.duplicate);
	g_assert_cmpuint (g_hash_table_size (td.seen), ==, 32);
	g_assert_cmpuint (ppn_port_allocator_count_free (td.pa), ==, 0);
	g_hash_table_unref (td.seen);
	g_mutex_clear (&td.lock);
	ppn_port_allocator_free (td.pa);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/port-allocator/exhaustion", test_exhaustion);
	g_test_add_func ("/port-allocator/release-order", test_release_order);
	g_test_add_func ("/port-allocator/held-port-skipped", test_held_port_skipped);
	g_test_add_func ("/port-allocator/mark-used", test_mark_used);
	g_test_add_func ("/port-allocator/bad-address", test_bad_address);
	g_test_add_func ("/port-allocator/threads", test_threads);
	return g_test_run ();
}
