#include "config.h"

#define G_LOG_DOMAIN "ppn-agent"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ppn-error.h"
#include "ppn-i18n.h"
#include "ppn-port-allocator.h"

struct _PpnPortAllocator {
	GMutex lock;
	gchar *address;
	struct in_addr inaddr;
	guint16 first;
	guint16 last;
	guint16 cursor; /* the next port to try: round robin */
	guint n_used;
	gboolean *used; /* indexed by port - first */
};

PpnPortAllocator *
ppn_port_allocator_new (const gchar *address, guint16 first, guint16 last, GError **error)
{
	PpnPortAllocator *self;
	struct in_addr inaddr;

	g_return_val_if_fail (address != NULL, NULL);
	g_return_val_if_fail (first > 0 && first <= last, NULL);
	if (inet_pton (AF_INET, address, &inaddr) != 1) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("'%s' is not a numeric IPv4 address"), address);
		return NULL;
	}
	self = g_new0 (PpnPortAllocator, 1);
	g_mutex_init (&self->lock);
	self->address = g_strdup (address);
	self->inaddr = inaddr;
	self->first = first;
	self->last = last;
	self->cursor = first;
	self->used = g_new0 (gboolean, (gsize)last - first + 1);
	return self;
}

void
ppn_port_allocator_free (PpnPortAllocator *self)
{
	if (self == NULL)
		return;
	g_mutex_clear (&self->lock);
	g_free (self->address);
	g_free (self->used);
	g_free (self);
}

const gchar *
ppn_port_allocator_get_address (PpnPortAllocator *self)
{
	g_return_val_if_fail (self != NULL, NULL);
	return self->address;
}

/* a port another program holds is not ours to hand out, even if we never
 * gave it away: try to bind it the way QEMU will */
static gboolean
ppn_port_allocator_probe (PpnPortAllocator *self, gboolean udp, guint16 port)
{
	struct sockaddr_in sa;
	gint fd = socket (AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	gint one = 1;
	gboolean ok;

	if (fd < 0)
		return FALSE;
	/* QEMU's slirp sets SO_REUSEADDR for TCP, so a port in TIME_WAIT is fine */
	if (!udp)
		(void)setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset (&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons (port);
	sa.sin_addr = self->inaddr;
	ok = bind (fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	if (ok && !udp)
		ok = listen (fd, 1) == 0;
	close (fd);
	return ok;
}

gboolean
ppn_port_allocator_allocate (PpnPortAllocator *self, const gchar *proto, guint16 *port, GError **error)
{
	g_autoptr(GMutexLocker) locker = NULL;
	guint size;
	gboolean udp;

	g_return_val_if_fail (self != NULL, FALSE);
	g_return_val_if_fail (port != NULL, FALSE);
	udp = g_strcmp0 (proto, "udp") == 0;

	locker = g_mutex_locker_new (&self->lock);
	size = (guint)self->last - self->first + 1;
	for (guint i = 0; i < size; i++) {
		guint16 candidate = self->cursor;

		self->cursor = candidate == self->last ? self->first : candidate + 1;
		if (self->used[candidate - self->first])
			continue;
		if (!ppn_port_allocator_probe (self, udp, candidate))
			continue;
		self->used[candidate - self->first] = TRUE;
		self->n_used++;
		*port = candidate;
		return TRUE;
	}
	g_set_error (error, PPN_ERROR, PPN_ERROR_NO_CAPACITY,
		     _("No free host port in %u-%u on %s"), self->first, self->last, self->address);
	return FALSE;
}

void
ppn_port_allocator_release (PpnPortAllocator *self, guint16 port)
{
	g_autoptr(GMutexLocker) locker = NULL;

	g_return_if_fail (self != NULL);
	locker = g_mutex_locker_new (&self->lock);
	if (port < self->first || port > self->last || !self->used[port - self->first])
		return;
	self->used[port - self->first] = FALSE;
	self->n_used--;
}

/* a port a running domain already holds (found after a restart) */
gboolean
ppn_port_allocator_mark_used (PpnPortAllocator *self, guint16 port)
{
	g_autoptr(GMutexLocker) locker = NULL;

	g_return_val_if_fail (self != NULL, FALSE);
	locker = g_mutex_locker_new (&self->lock);
	if (port < self->first || port > self->last)
		return FALSE;
	if (!self->used[port - self->first]) {
		self->used[port - self->first] = TRUE;
		self->n_used++;
	}
	return TRUE;
}

gboolean
ppn_port_allocator_is_used (PpnPortAllocator *self, guint16 port)
{
	g_autoptr(GMutexLocker) locker = NULL;

	g_return_val_if_fail (self != NULL, FALSE);
	locker = g_mutex_locker_new (&self->lock);
	if (port < self->first || port > self->last)
		return FALSE;
	return self->used[port - self->first];
}

/* ports not handed out by us; ones other programs hold are counted too,
 * probing all of them for every heartbeat would cost too much */
guint
ppn_port_allocator_count_free (PpnPortAllocator *self)
{
	g_autoptr(GMutexLocker) locker = NULL;

	g_return_val_if_fail (self != NULL, 0);
	locker = g_mutex_locker_new (&self->lock);
	return ((guint)self->last - self->first + 1) - self->n_used;
}

/* makes exactly the ports in @used (GUINT_TO_POINTER keys) handed out;
 * returns how many were released */
guint
ppn_port_allocator_reset (PpnPortAllocator *self, GHashTable *used)
{
	g_autoptr(GMutexLocker) locker = NULL;
	guint released = 0;

	g_return_val_if_fail (self != NULL && used != NULL, 0);
	locker = g_mutex_locker_new (&self->lock);
	for (guint port = self->first; port <= self->last; port++) {
		gboolean want = g_hash_table_contains (used, GUINT_TO_POINTER (port));
		gboolean *slot = &self->used[port - self->first];

		if (*slot && !want) {
			released++;
			self->n_used--;
		} else if (!*slot && want) {
			self->n_used++;
		}
		*slot = want;
	}
	return released;
}
