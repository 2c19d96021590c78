#include "config.h"

#define G_LOG_DOMAIN "ppn"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ppn-bytes.h"
#include "ppn-error.h"
#include "ppn-file-ledger.h"
#include "ppn-i18n.h"
#include "ppn-ledger-private.h"
#include "ppn-merkle.h"

/* The file (docs/ledger.md):
 *
 *   header  "PPNLEDGR" | u32 version | u32 flags | SHA-256 of those 16 bytes
 *   record  u8 type | u32 length | payload | checksum
 *
 * all integers big-endian. A record's checksum is SHA-256 over the 32
 * bytes before the record (the previous checksum, or the header's) and
 * the record itself, so the records form a chain: a changed byte fails
 * its own record, a removed, inserted or moved record fails where it
 * breaks the chain. Entry payloads are u64 index | entry bytes; tree head
 * payloads are ppn_tree_head_signed_data() | the Ed25519 signature. */
#define PPN_LEDGER_MAGIC "PPNLEDGR"
#define PPN_LEDGER_VERSION 1
#define PPN_LEDGER_HEADER_SIZE (16 + PPN_MERKLE_HASH_SIZE)
#define PPN_LEDGER_RECORD_ENTRY 'E'
#define PPN_LEDGER_RECORD_HEAD 'H'
#define PPN_LEDGER_PREFIX_SIZE 5
#define PPN_LEDGER_CHAIN_SIZE PPN_MERKLE_HASH_SIZE
#define PPN_LEDGER_HEAD_PAYLOAD_SIZE (PPN_TREE_HEAD_SIGNED_DATA_SIZE + PPN_TREE_HEAD_SIGNATURE_SIZE)
#define PPN_LEDGER_READ_CHUNK (1024 * 1024)

#define PPN_LEDGER_FILE "ledger"
#define PPN_LEDGER_KEY_FILE "ledger.key"
#define PPN_LEDGER_PUB_FILE "ledger.pub"

struct _PpnFileLedger {
	GObject parent_instance;

	gchar *path;
	int fd_append; /* O_APPEND, flock()ed: one writer */
	int fd_read;
	PpnPrivkey *key;
	GBytes *public_key_pem;

	/* one append at a time; taken before @lock, and held while @lock is
	 * not, so that readers are not kept waiting by an fsync */
	GMutex append_lock;
	GMutex lock; /* what follows */
	PpnMerkleTree *tree; /* may hold the leaves of the append in flight beyond @size */
	GArray *offsets;     /* guint64: file offset of each entry's record */
	guint64 size;	     /* committed entries */
	guint64 length;	     /* committed bytes of the file */
	guint8 chain[PPN_LEDGER_CHAIN_SIZE];
	PpnTreeHead *head;
	gchar *broken; /* why appends are refused, or NULL */
};

static void ppn_file_ledger_iface_init (PpnLedgerInterface *iface);

G_DEFINE_TYPE_WITH_CODE (PpnFileLedger,
			 ppn_file_ledger,
			 G_TYPE_OBJECT,
			 G_IMPLEMENT_INTERFACE (PPN_TYPE_LEDGER, ppn_file_ledger_iface_init))

static void
ppn_ledger_put_u32 (GByteArray *buf, guint32 v)
{
	guint32 be = GUINT32_TO_BE (v);

	g_byte_array_append (buf, (const guint8 *)&be, sizeof be);
}

static void
ppn_ledger_header (guint8 out[PPN_LEDGER_HEADER_SIZE])
{
	guint32 version = GUINT32_TO_BE (PPN_LEDGER_VERSION);
	guint32 flags = 0;

	memcpy (out, PPN_LEDGER_MAGIC, 8);
	memcpy (out + 8, &version, 4);
	memcpy (out + 12, &flags, 4);
	ppn_merkle_sha256 (out, 16, out + 16);
}

/* appends a record to @buf, whose last 32 bytes are the chain so far */
static void
ppn_ledger_put_record (GByteArray *buf,
		       guint8 type,
		       const guint8 *a,
		       gsize a_len,
		       const guint8 *b,
		       gsize b_len)
{
	gsize start = buf->len - PPN_LEDGER_CHAIN_SIZE;
	guint8 checksum[PPN_MERKLE_HASH_SIZE];

	g_byte_array_append (buf, &type, 1);
	ppn_ledger_put_u32 (buf, (guint32)(a_len + b_len));
	g_byte_array_append (buf, a, (guint)a_len);
	if (b_len > 0)
		g_byte_array_append (buf, b, (guint)b_len);
	ppn_merkle_sha256 (buf->data + start, buf->len - start, checksum);
	g_byte_array_append (buf, checksum, sizeof checksum);
}

/* @format names what failed, without the reason: errno's follows */
static gboolean ppn_ledger_set_io_error (GError **error, int errsv, const gchar *format, ...)
	G_GNUC_PRINTF (3, 4);
static gboolean
ppn_ledger_set_io_error (GError **error, int errsv, const gchar *format, ...)
{
	g_autofree gchar *what = NULL;
	va_list args;

	va_start (args, format);
	what = g_strdup_vprintf (format, args);
	va_end (args);
	g_set_error (error, PPN_ERROR, errsv == ENOENT ? PPN_ERROR_NOT_FOUND : PPN_ERROR_INTERNAL, "%s: %s",
		     what, g_strerror (errsv));
	return FALSE;
}

/* an append that failed may work later (a disk with room again): the
 * caller answers 503 */
static gboolean
ppn_ledger_set_append_error (GError **error, int errsv, const gchar *path)
{
	g_set_error (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE, _("Cannot append to the ledger %s: %s"), path,
		     g_strerror (errsv));
	return FALSE;
}

/* ---- reading ----------------------------------------------------------- */

typedef struct {
	int fd;
	guint8 *buf;
	gsize cap;
	guint64 base; /* file offset of buf[0] */
	gsize len;    /* bytes of buf read */
	gboolean eof;
} PpnLedgerReader;

static void
ppn_ledger_reader_clear (PpnLedgerReader *r)
{
	g_clear_pointer (&r->buf, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (PpnLedgerReader, ppn_ledger_reader_clear)

/* makes the file's bytes [from, from + need) readable at *out and returns
 * how many of them there are: fewer than @need only at the end of the
 * file; -1 with errno on a read error */
static gssize
ppn_ledger_reader_get (PpnLedgerReader *r, guint64 from, gsize need, const guint8 **out)
{
	gsize off;

	if (from < r->base || from > r->base + r->len) {
		r->base = from;
		r->len = 0;
		r->eof = FALSE;
	}
	off = (gsize)(from - r->base);
	if (off + need > r->cap) {
		if (r->len > off)
			memmove (r->buf, r->buf + off, r->len - off);
		r->len -= off;
		r->base = from;
		off = 0;
		if (need > r->cap) {
			r->cap = MAX (need, (gsize)PPN_LEDGER_READ_CHUNK);
			r->buf = g_realloc (r->buf, r->cap);
		}
	}
	while (r->len < off + need && !r->eof) {
		gssize n = pread (r->fd, r->buf + r->len, r->cap - r->len, (off_t)(r->base + r->len));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			r->eof = TRUE;
		r->len += (gsize)n;
	}
	*out = r->buf + off;
	return (gssize)MIN (need, r->len - off);
}

/* ---- verifying --------------------------------------------------------- */

typedef struct {
	gnutls_pubkey_t key;
	GArray *offsets; /* NULL when not wanted */
	PpnMerkleTree *tree;
	guint64 entries;      /* entry records read */
	guint64 covered;      /* entries covered by verified heads */
	guint64 heads;
	PpnTreeHead *newest;
	guint64 length;	      /* the file up to the end of the newest verified head */
	guint8 chain[PPN_LEDGER_CHAIN_SIZE];
	PpnLedgerProblem problem;
	guint64 bad_index;
	guint64 bad_offset;
	gchar *message;
} PpnLedgerScan;

static void
ppn_ledger_scan_clear (PpnLedgerScan *scan)
{
	g_clear_pointer (&scan->offsets, g_array_unref);
	g_clear_pointer (&scan->tree, ppn_merkle_tree_free);
	g_clear_pointer (&scan->newest, ppn_tree_head_free);
	g_clear_pointer (&scan->message, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (PpnLedgerScan, ppn_ledger_scan_clear)

static gboolean ppn_ledger_scan_fail (PpnLedgerScan *scan,
				      PpnLedgerProblem problem,
				      guint64 index,
				      guint64 offset,
				      const gchar *format,
				      ...) G_GNUC_PRINTF (5, 6);
static gboolean
ppn_ledger_scan_fail (PpnLedgerScan *scan,
		      PpnLedgerProblem problem,
		      guint64 index,
		      guint64 offset,
		      const gchar *format,
		      ...)
{
	va_list args;

	scan->problem = problem;
	scan->bad_index = index;
	scan->bad_offset = offset;
	va_start (args, format);
	g_free (scan->message);
	scan->message = g_strdup_vprintf (format, args);
	va_end (args);
	return FALSE;
}

static gboolean
ppn_ledger_scan_header (PpnLedgerScan *scan, PpnLedgerReader *reader)
{
	guint8 expected[PPN_LEDGER_HEADER_SIZE];
	const guint8 *p = NULL;
	gssize n = ppn_ledger_reader_get (reader, 0, PPN_LEDGER_HEADER_SIZE, &p);

	if (n < 0)
		return ppn_ledger_scan_fail (scan, PPN_LEDGER_PROBLEM_IO, PPN_LEDGER_NO_INDEX, 0,
					     _("Cannot read the ledger: %s"), g_strerror (errno));
	if (n == 0)
		return ppn_ledger_scan_fail (scan, PPN_LEDGER_PROBLEM_HEADER, PPN_LEDGER_NO_INDEX, 0,
					     _("The file is empty, not a ledger"));
	if (memcmp (p, PPN_LEDGER_MAGIC, MIN ((gsize)n, 8)) != 0)
		return ppn_ledger_scan_fail (scan, PPN_LEDGER_PROBLEM_HEADER, PPN_LEDGER_NO_INDEX, 0,
					     _("The file is not a ppn ledger (no PPNLEDGR header)"));
	if (n < PPN_LEDGER_HEADER_SIZE)
		return ppn_ledger_scan_fail (scan, PPN_LEDGER_PROBLEM_TORN_TAIL, PPN_LEDGER_NO_INDEX, 0,
					     _("The file ends inside the ledger header"));
	if (ppn_read_be32 (p + 8) != PPN_LEDGER_VERSION)
		return ppn_ledger_scan_fail (scan, PPN_LEDGER_PROBLEM_HEADER, PPN_LEDGER_NO_INDEX, 0,
					     _("The ledger is of version %u; this ppn reads version %d"),
					     ppn_read_be32 (p + 8), PPN_LEDGER_VERSION);
	ppn_ledger_header (expected);
	if (memcmp (p, expected, PPN_LEDGER_HEADER_SIZE) != 0)
		return ppn_ledger_scan_fail (scan, PPN_LEDGER_PROBLEM_HEADER, PPN_LEDGER_NO_INDEX, 0,
					     _("The ledger header was changed (flags or checksum)"));
	memcpy (scan->chain, p + 16, PPN_LEDGER_CHAIN_SIZE);
	scan->length = PPN_LEDGER_HEADER_SIZE;
	return TRUE;
}

static gboolean
ppn_ledger_scan_entry (PpnLedgerScan *scan,
		       guint64 offset,
		       const guint8 *payload,
		       gsize len,
		       gboolean checksum_ok)
{
	guint64 claimed = ppn_read_be64 (payload);
	guint64 expected = scan->entries;
	guint8 leaf[PPN_MERKLE_HASH_SIZE];

	if (claimed != expected && !checksum_ok)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_ORDER, expected, offset,
			_("entry %" G_GUINT64_FORMAT ": the record here (offset %" G_GUINT64_FORMAT
			  ") is entry %" G_GUINT64_FORMAT " and breaks the checksum chain: an entry "
			  "was removed, inserted or moved here"),
			expected, offset, claimed);
	if (!checksum_ok)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_CHECKSUM, expected, offset,
			_("entry %" G_GUINT64_FORMAT ": its record (offset %" G_GUINT64_FORMAT
			  ") does not match its checksum: its bytes were changed, or the record "
			  "before it was removed or replaced"),
			expected, offset);
	if (claimed != expected)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_ORDER, expected, offset,
			_("entry %" G_GUINT64_FORMAT ": the record here (offset %" G_GUINT64_FORMAT
			  ") is entry %" G_GUINT64_FORMAT ": entries are out of order"),
			expected, offset, claimed);
	ppn_merkle_leaf_hash (payload + 8, len - 8, leaf);
	ppn_merkle_tree_append (scan->tree, leaf);
	if (scan->offsets != NULL)
		g_array_append_val (scan->offsets, offset);
	scan->entries++;
	return TRUE;
}

static gboolean
ppn_ledger_scan_head (PpnLedgerScan *scan,
		      guint64 offset,
		      const guint8 *payload,
		      gboolean checksum_ok,
		      const guint8 checksum[PPN_MERKLE_HASH_SIZE])
{
	g_autoptr(PpnTreeHead) head = NULL;
	g_autoptr(GBytes) sig = NULL;
	guint8 root[PPN_MERKLE_HASH_SIZE];
	const guint8 *p = payload + sizeof PPN_TREE_HEAD_DOMAIN;
	gboolean is_head = memcmp (payload, PPN_TREE_HEAD_DOMAIN, sizeof PPN_TREE_HEAD_DOMAIN) == 0;
	guint64 first = scan->covered;

	/* a head that broke the chain and counts more entries than came
	 * before it: the record before it, an entry, was removed */
	if (!checksum_ok && is_head && ppn_read_be64 (p) > scan->entries)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_ORDER, scan->entries, offset,
			_("entry %" G_GUINT64_FORMAT ": missing: the tree head here (offset %"
			  G_GUINT64_FORMAT ") is of tree size %" G_GUINT64_FORMAT " and breaks the "
			  "checksum chain: an entry was removed"),
			scan->entries, offset, ppn_read_be64 (p));
	if (!checksum_ok)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_CHECKSUM, first, offset,
			_("entry %" G_GUINT64_FORMAT ": the tree head after entries %" G_GUINT64_FORMAT
			  " to %" G_GUINT64_FORMAT " (offset %" G_GUINT64_FORMAT ") does not match its "
			  "checksum: its bytes were changed, or the record before it was removed or "
			  "replaced"),
			first, first, scan->entries - 1, offset);
	if (!is_head)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_RECORD, first, offset,
			_("entry %" G_GUINT64_FORMAT ": the tree head record at offset %" G_GUINT64_FORMAT
			  " does not hold a ppn tree head"),
			first, offset);
	sig = g_bytes_new (payload + PPN_TREE_HEAD_SIGNED_DATA_SIZE, PPN_TREE_HEAD_SIGNATURE_SIZE);
	head = ppn_tree_head_new (ppn_read_be64 (p), p + 16, (gint64)ppn_read_be64 (p + 8), sig);
	if (scan->newest != NULL && head->tree_size <= scan->newest->tree_size)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_HEAD_ORDER, first, offset,
			_("entry %" G_GUINT64_FORMAT ": the tree head at offset %" G_GUINT64_FORMAT
			  " goes back from tree size %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT),
			first, offset, scan->newest->tree_size, head->tree_size);
	if (scan->newest != NULL && head->timestamp < scan->newest->timestamp)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_HEAD_ORDER, first, offset,
			_("entry %" G_GUINT64_FORMAT ": the tree head at offset %" G_GUINT64_FORMAT
			  " is older than the one before it"),
			first, offset);
	if (head->tree_size != scan->entries)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_ROOT, first, offset,
			_("entry %" G_GUINT64_FORMAT ": the tree head at offset %" G_GUINT64_FORMAT
			  " is of tree size %" G_GUINT64_FORMAT ", but %" G_GUINT64_FORMAT
			  " entries precede it"),
			first, offset, head->tree_size, scan->entries);
	/* the signature first: a head must be the ledger's before its root
	 * can say anything */
	if (!ppn_tree_head_verify_with (head, scan->key, NULL))
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_SIGNATURE, first, offset,
			_("entry %" G_GUINT64_FORMAT ": the tree head at offset %" G_GUINT64_FORMAT
			  " (tree size %" G_GUINT64_FORMAT ") is not signed by the ledger key"),
			first, offset, head->tree_size);
	if (!ppn_merkle_tree_root (scan->tree, head->tree_size, root, NULL) ||
	    memcmp (root, head->root_hash, PPN_MERKLE_HASH_SIZE) != 0)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_ROOT, first, offset,
			_("entry %" G_GUINT64_FORMAT ": the entries do not hash to the root of the signed "
			  "tree head of size %" G_GUINT64_FORMAT " (offset %" G_GUINT64_FORMAT "): one of "
			  "entries %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT " was changed or moved, "
			  "with its checksum forged; %" G_GUINT64_FORMAT " is the first not covered by "
			  "an earlier verified head"),
			first, head->tree_size, offset, first, head->tree_size - 1, first);
	scan->covered = scan->entries;
	scan->heads++;
	g_clear_pointer (&scan->newest, ppn_tree_head_free);
	scan->newest = g_steal_pointer (&head);
	memcpy (scan->chain, checksum, PPN_LEDGER_CHAIN_SIZE);
	return TRUE;
}

static gboolean
ppn_ledger_scan_torn (PpnLedgerScan *scan, guint64 offset, guint8 type, gsize have, gsize want)
{
	if (type == PPN_LEDGER_RECORD_ENTRY)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_TORN_TAIL, scan->entries, offset,
			_("entry %" G_GUINT64_FORMAT ": the file ends inside its record (offset %"
			  G_GUINT64_FORMAT ", %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " bytes): a torn "
			  "write, or the file was cut"),
			scan->entries, offset, have, want);
	if (type == PPN_LEDGER_RECORD_HEAD)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_TORN_TAIL, scan->covered, offset,
			_("entry %" G_GUINT64_FORMAT ": the file ends inside a tree head record (offset %"
			  G_GUINT64_FORMAT ", %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " bytes), so no tree "
			  "head covers the entries from %" G_GUINT64_FORMAT " on: a torn write, or the file "
			  "was cut"),
			scan->covered, offset, have, want, scan->covered);
	return ppn_ledger_scan_fail (
		scan, PPN_LEDGER_PROBLEM_TORN_TAIL, scan->entries, offset,
		_("entry %" G_GUINT64_FORMAT ": the file ends in %" G_GSIZE_FORMAT " bytes at offset %"
		  G_GUINT64_FORMAT " that are no ledger record: bytes were added, or a write was torn"),
		scan->entries, have, offset);
}

static gboolean
ppn_ledger_scan_read_error (PpnLedgerScan *scan, guint64 offset)
{
	return ppn_ledger_scan_fail (scan, PPN_LEDGER_PROBLEM_IO, PPN_LEDGER_NO_INDEX, offset,
				     _("Cannot read the ledger: %s"), g_strerror (errno));
}

/* the record at *@offset, checked and counted; *@offset moves past it.
 * *@end is set at the end of the file instead. */
static gboolean
ppn_ledger_scan_record (PpnLedgerScan *scan, PpnLedgerReader *reader, guint64 *offset, gboolean *end)
{
	const guint8 *p = NULL;
	gsize want = PPN_LEDGER_CHAIN_SIZE + PPN_LEDGER_PREFIX_SIZE;
	/* the record with the chain value before it, which its checksum covers */
	gssize n = ppn_ledger_reader_get (reader, *offset - PPN_LEDGER_CHAIN_SIZE, want, &p);
	guint8 type, checksum[PPN_MERKLE_HASH_SIZE];
	guint64 index;
	guint32 len;
	gboolean ok;

	if (n < 0)
		return ppn_ledger_scan_read_error (scan, *offset);
	if ((gsize)n == PPN_LEDGER_CHAIN_SIZE) {
		*end = TRUE;
		return TRUE;
	}
	type = p[PPN_LEDGER_CHAIN_SIZE];
	if ((gsize)n < want)
		return ppn_ledger_scan_torn (scan, *offset, type, (gsize)n - PPN_LEDGER_CHAIN_SIZE,
					     PPN_LEDGER_PREFIX_SIZE);
	len = ppn_read_be32 (p + PPN_LEDGER_CHAIN_SIZE + 1);
	index = type == PPN_LEDGER_RECORD_HEAD ? scan->covered : scan->entries;
	if (type != PPN_LEDGER_RECORD_ENTRY && type != PPN_LEDGER_RECORD_HEAD)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_RECORD, index, *offset,
			_("entry %" G_GUINT64_FORMAT ": at offset %" G_GUINT64_FORMAT " there is no ledger "
			  "record (type 0x%02x): bytes were added or changed"),
			index, *offset, type);
	if ((type == PPN_LEDGER_RECORD_ENTRY && (len < 8 || len > 8 + PPN_FILE_LEDGER_ENTRY_MAX)) ||
	    (type == PPN_LEDGER_RECORD_HEAD && len != PPN_LEDGER_HEAD_PAYLOAD_SIZE))
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_RECORD, index, *offset,
			_("entry %" G_GUINT64_FORMAT ": the record at offset %" G_GUINT64_FORMAT
			  " cannot be %u bytes long: its length was changed"),
			index, *offset, len);
	want += (gsize)len + PPN_MERKLE_HASH_SIZE;
	n = ppn_ledger_reader_get (reader, *offset - PPN_LEDGER_CHAIN_SIZE, want, &p);
	if (n < 0)
		return ppn_ledger_scan_read_error (scan, *offset);
	if ((gsize)n < want)
		return ppn_ledger_scan_torn (scan, *offset, type, (gsize)n - PPN_LEDGER_CHAIN_SIZE,
					     want - PPN_LEDGER_CHAIN_SIZE);
	ppn_merkle_sha256 (p, want - PPN_MERKLE_HASH_SIZE, checksum);
	ok = memcmp (checksum, p + want - PPN_MERKLE_HASH_SIZE, PPN_MERKLE_HASH_SIZE) == 0;
	p += PPN_LEDGER_CHAIN_SIZE + PPN_LEDGER_PREFIX_SIZE;
	if (type == PPN_LEDGER_RECORD_ENTRY && !ppn_ledger_scan_entry (scan, *offset, p, len, ok))
		return FALSE;
	if (type == PPN_LEDGER_RECORD_HEAD && !ppn_ledger_scan_head (scan, *offset, p, ok, checksum))
		return FALSE;
	*offset += want - PPN_LEDGER_CHAIN_SIZE;
	if (type == PPN_LEDGER_RECORD_HEAD)
		scan->length = *offset;
	return TRUE;
}

/* reads the whole file, stopping at the first problem */
static gboolean
ppn_ledger_scan_file (PpnLedgerScan *scan, int fd)
{
	g_auto(PpnLedgerReader) reader = {fd, NULL, 0, 0, 0, FALSE};
	guint64 offset = PPN_LEDGER_HEADER_SIZE;
	gboolean end = FALSE;

	scan->tree = ppn_merkle_tree_new ();
	scan->bad_index = PPN_LEDGER_NO_INDEX;
	if (!ppn_ledger_scan_header (scan, &reader))
		return FALSE;
	while (!end) {
		if (!ppn_ledger_scan_record (scan, &reader, &offset, &end))
			return FALSE;
	}
	if (scan->entries > scan->covered)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_TORN_TAIL, scan->covered, scan->length,
			_("entry %" G_GUINT64_FORMAT ": no tree head covers the last %" G_GUINT64_FORMAT
			  " entries: an append that did not finish, or the file was cut"),
			scan->covered, scan->entries - scan->covered);
	return TRUE;
}

static gboolean
ppn_ledger_scan_published (PpnLedgerScan *scan, const PpnTreeHead *published)
{
	g_autoptr(GError) local = NULL;
	guint8 root[PPN_MERKLE_HASH_SIZE];

	if (!ppn_tree_head_verify_with (published, scan->key, &local))
		return ppn_ledger_scan_fail (scan, PPN_LEDGER_PROBLEM_PUBLISHED, PPN_LEDGER_NO_INDEX, 0,
					     _("The published tree head is not signed by the ledger key: %s"),
					     local->message);
	if (published->tree_size > scan->covered)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_PUBLISHED, scan->covered, scan->length,
			_("entry %" G_GUINT64_FORMAT ": the ledger ends here, but the published tree head is "
			  "of tree size %" G_GUINT64_FORMAT ": entries were removed from its end"),
			scan->covered, published->tree_size);
	if (!ppn_merkle_tree_root (scan->tree, published->tree_size, root, NULL) ||
	    memcmp (root, published->root_hash, PPN_MERKLE_HASH_SIZE) != 0)
		return ppn_ledger_scan_fail (
			scan, PPN_LEDGER_PROBLEM_PUBLISHED, PPN_LEDGER_NO_INDEX, 0,
			_("The first %" G_GUINT64_FORMAT " entries do not hash to the root of the published "
			  "tree head: the ledger was rewritten after that head was published"),
			published->tree_size);
	return TRUE;
}

void
ppn_ledger_verify_result_clear (PpnLedgerVerifyResult *result)
{
	g_return_if_fail (result != NULL);
	g_clear_pointer (&result->newest_head, ppn_tree_head_free);
	g_clear_pointer (&result->message, g_free);
	memset (result, 0, sizeof *result);
}

const gchar *
ppn_ledger_problem_to_string (PpnLedgerProblem problem)
{
	static const gchar *const names[] = {
		[PPN_LEDGER_PROBLEM_NONE] = "none",
		[PPN_LEDGER_PROBLEM_IO] = "io",
		[PPN_LEDGER_PROBLEM_HEADER] = "header",
		[PPN_LEDGER_PROBLEM_RECORD] = "record",
		[PPN_LEDGER_PROBLEM_CHECKSUM] = "checksum",
		[PPN_LEDGER_PROBLEM_ORDER] = "order",
		[PPN_LEDGER_PROBLEM_ROOT] = "root",
		[PPN_LEDGER_PROBLEM_SIGNATURE] = "signature",
		[PPN_LEDGER_PROBLEM_HEAD_ORDER] = "head_order",
		[PPN_LEDGER_PROBLEM_TORN_TAIL] = "torn_tail",
		[PPN_LEDGER_PROBLEM_PUBLISHED] = "published",
	};

	if ((guint)problem >= G_N_ELEMENTS (names))
		return "unknown";
	return names[problem];
}

static gboolean
ppn_ledger_scan_to_error (PpnLedgerScan *scan, GError **error)
{
	if (scan->problem == PPN_LEDGER_PROBLEM_NONE)
		return TRUE;
	g_set_error_literal (error, PPN_ERROR,
			     scan->problem == PPN_LEDGER_PROBLEM_IO ? PPN_ERROR_INTERNAL
								    : PPN_ERROR_INVALID_REQUEST,
			     scan->message);
	return FALSE;
}

static int
ppn_ledger_open_read (const gchar *path, GError **error)
{
	int fd = open (path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		ppn_ledger_set_io_error (error, errno, _("Cannot open the ledger %s"), path);
	return fd;
}

gboolean
ppn_file_ledger_verify (const gchar *path,
			GBytes *public_key_pem,
			const PpnTreeHead *published_head,
			PpnLedgerVerifyResult *result,
			GError **error)
{
	g_auto(PpnLedgerScan) scan = {NULL};
	g_autoptr(PpnPubkey) key = NULL;
	g_autoptr(GError) local = NULL;
	gboolean ok = FALSE;
	int fd = -1;

	g_return_val_if_fail (path != NULL && public_key_pem != NULL, FALSE);
	if (result != NULL)
		memset (result, 0, sizeof *result);
	key = ppn_ledger_pubkey_import (public_key_pem, &local);
	if (key != NULL)
		fd = ppn_ledger_open_read (path, &local);
	if (fd >= 0) {
		scan.key = key;
		ok = ppn_ledger_scan_file (&scan, fd) &&
		     (published_head == NULL || ppn_ledger_scan_published (&scan, published_head));
		close (fd);
	} else {
		/* the key or the file could not be had */
		ppn_ledger_scan_fail (&scan, PPN_LEDGER_PROBLEM_IO, PPN_LEDGER_NO_INDEX, 0, "%s",
				      local->message);
	}
	if (result != NULL) {
		result->entries = scan.covered;
		result->tree_heads = scan.heads;
		result->newest_head = g_steal_pointer (&scan.newest);
		result->problem = scan.problem;
		result->bad_index = ok ? PPN_LEDGER_NO_INDEX : scan.bad_index;
		result->bad_offset = scan.bad_offset;
		result->message = g_strdup (scan.message);
	}
	if (ok)
		return TRUE;
	/* that error as it came: NOT_FOUND for no file, say */
	if (local != NULL) {
		g_propagate_error (error, g_steal_pointer (&local));
		return FALSE;
	}
	return ppn_ledger_scan_to_error (&scan, error);
}

/* ---- the ledger -------------------------------------------------------- */

static void
ppn_file_ledger_finalize (GObject *object)
{
	PpnFileLedger *self = PPN_FILE_LEDGER (object);

	if (self->fd_append >= 0)
		close (self->fd_append);
	if (self->fd_read >= 0)
		close (self->fd_read);
	g_clear_pointer (&self->key, gnutls_privkey_deinit);
	g_clear_pointer (&self->public_key_pem, g_bytes_unref);
	g_clear_pointer (&self->tree, ppn_merkle_tree_free);
	g_clear_pointer (&self->offsets, g_array_unref);
	g_clear_pointer (&self->head, ppn_tree_head_free);
	g_free (self->broken);
	g_free (self->path);
	g_mutex_clear (&self->append_lock);
	g_mutex_clear (&self->lock);
	G_OBJECT_CLASS (ppn_file_ledger_parent_class)->finalize (object);
}

static void
ppn_file_ledger_class_init (PpnFileLedgerClass *klass)
{
	G_OBJECT_CLASS (klass)->finalize = ppn_file_ledger_finalize;
}

static void
ppn_file_ledger_init (PpnFileLedger *self)
{
	self->fd_append = -1;
	self->fd_read = -1;
	g_mutex_init (&self->append_lock);
	g_mutex_init (&self->lock);
}

static gboolean
ppn_file_ledger_write_all (int fd, const guint8 *data, gsize len)
{
	while (len > 0) {
		gssize n = write (fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return FALSE;
		data += n;
		len -= (gsize)n;
	}
	return TRUE;
}

static int
ppn_file_ledger_get_flags (int fd, int *flags)
{
	return ioctl (fd, FS_IOC_GETFLAGS, flags);
}

/* the storage's own refusal of rewrites, where the filesystem has it and
 * we may set it (CAP_LINUX_IMMUTABLE); optional, see docs/ledger.md */
static void
ppn_file_ledger_set_append_only (int fd, const gchar *path)
{
	int flags = 0;

	if (ppn_file_ledger_get_flags (fd, &flags) == 0) {
		flags |= FS_APPEND_FL;
		if (ioctl (fd, FS_IOC_SETFLAGS, &flags) == 0) {
			g_debug ("%s: made append-only (chattr +a)", path);
			return;
		}
	}
	/* EOPNOTSUPP, ENOTTY: not this filesystem; EPERM: no CAP_LINUX_IMMUTABLE */
	g_debug ("%s: not made append-only (chattr +a): %s", path, g_strerror (errno));
}

/* takes back the bytes of an append that failed: our own, never
 * committed. An append-only file can only be cut with the flag off, which
 * needs the capability that set it. */
static gboolean
ppn_file_ledger_rollback (PpnFileLedger *self, guint64 length, int *errsv)
{
	int flags = 0;
	gboolean cut = ftruncate (self->fd_append, (off_t)length) == 0;

	if (!cut && errno == EPERM && ppn_file_ledger_get_flags (self->fd_append, &flags) == 0 &&
	    (flags & FS_APPEND_FL) != 0) {
		int off = flags & ~FS_APPEND_FL;

		if (ioctl (self->fd_append, FS_IOC_SETFLAGS, &off) == 0) {
			cut = ftruncate (self->fd_append, (off_t)length) == 0;
			*errsv = errno;
			if (ioctl (self->fd_append, FS_IOC_SETFLAGS, &flags) < 0)
				g_debug ("%s: cannot make it append-only again: %s", self->path,
					 g_strerror (errno));
			if (!cut)
				return FALSE;
		}
	}
	if (!cut || fsync (self->fd_append) < 0) {
		*errsv = errno;
		return FALSE;
	}
	return TRUE;
}

/* from now on appends are refused, with @why (taken) */
static gboolean
ppn_file_ledger_break (PpnFileLedger *self, gchar *why, GError **error)
{
	g_set_error_literal (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE, why);
	g_mutex_lock (&self->lock);
	g_free (self->broken);
	self->broken = why;
	g_mutex_unlock (&self->lock);
	return FALSE;
}

/* writes and syncs the records of one append at the committed end of the
 * file; on failure the file is as it was, or the ledger is broken */
static gboolean
ppn_file_ledger_write (PpnFileLedger *self, const guint8 *data, gsize len, guint64 length, GError **error)
{
	struct stat st;
	int errsv, rollback_errsv = 0;

	if (fstat (self->fd_append, &st) < 0)
		return ppn_ledger_set_append_error (error, errno, self->path);
	if ((guint64)st.st_size != length)
		return ppn_file_ledger_break (
			self,
			g_strdup_printf (_("The ledger %s holds %" G_GUINT64_FORMAT " bytes where ppn wrote %"
					   G_GUINT64_FORMAT ": something else changed it, and ppn appends "
					   "no more to it"),
					 self->path, (guint64)st.st_size, length),
			error);
	if (ppn_file_ledger_write_all (self->fd_append, data, len) && fsync (self->fd_append) == 0)
		return TRUE;
	errsv = errno;
	if (ppn_file_ledger_rollback (self, length, &rollback_errsv))
		return ppn_ledger_set_append_error (error, errsv, self->path);
	return ppn_file_ledger_break (
		self,
		g_strdup_printf (_("An append to the ledger %s failed (%s) and its bytes could not be taken "
				   "back (%s): it refuses appends until an operator checks it with "
				   "'ppnctl ledger verify'"),
				 self->path, g_strerror (errsv), g_strerror (rollback_errsv)),
		error);
}

static gboolean
ppn_file_ledger_append (PpnLedger *ledger, GPtrArray *entries, guint64 *first_index, GError **error)
{
	PpnFileLedger *self = PPN_FILE_LEDGER (ledger);
	g_autoptr(GMutexLocker) writer = g_mutex_locker_new (&self->append_lock);
	g_autoptr(GByteArray) buf = g_byte_array_new ();
	g_autoptr(GArray) leaves = g_array_sized_new (FALSE, FALSE, PPN_MERKLE_HASH_SIZE, entries->len);
	g_autoptr(GArray) offsets = g_array_sized_new (FALSE, FALSE, sizeof (guint64), entries->len);
	g_autoptr(PpnTreeHead) head = NULL;
	guint8 root[PPN_MERKLE_HASH_SIZE];
	guint64 size, length;
	gint64 timestamp;

	if (entries->len == 0) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST, _("Nothing to append"));
		return FALSE;
	}
	for (guint i = 0; i < entries->len; i++) {
		gsize len = 0;
		const guint8 *data = g_bytes_get_data (g_ptr_array_index (entries, i), &len);
		guint8 leaf[PPN_MERKLE_HASH_SIZE];

		if (len > PPN_FILE_LEDGER_ENTRY_MAX) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_PAYLOAD_TOO_LARGE,
				     _("A ledger entry is at most %d bytes, not %" G_GSIZE_FORMAT),
				     PPN_FILE_LEDGER_ENTRY_MAX, len);
			return FALSE;
		}
		ppn_merkle_leaf_hash (data, len, leaf);
		g_array_append_vals (leaves, leaf, 1);
	}

	/* the new leaves go into the tree for the new root; readers keep to
	 * @size until the append is on disk */
	g_mutex_lock (&self->lock);
	if (self->broken != NULL) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_UNAVAILABLE, self->broken);
		g_mutex_unlock (&self->lock);
		return FALSE;
	}
	size = self->size;
	length = self->length;
	timestamp = self->head != NULL ? self->head->timestamp : 0;
	g_byte_array_append (buf, self->chain, PPN_LEDGER_CHAIN_SIZE);
	for (guint i = 0; i < leaves->len; i++)
		ppn_merkle_tree_append (self->tree, (const guint8 *)leaves->data + i * PPN_MERKLE_HASH_SIZE);
	ppn_merkle_tree_root (self->tree, size + entries->len, root, NULL);
	g_mutex_unlock (&self->lock);

	/* a clock that steps back does not make a head older than the last */
	timestamp = MAX (timestamp, g_get_real_time () / 1000);
	head = ppn_tree_head_new (size + entries->len, root, timestamp, NULL);
	if (!ppn_tree_head_sign_with (head, self->key, error)) {
		g_mutex_lock (&self->lock);
		ppn_merkle_tree_truncate (self->tree, size);
		g_mutex_unlock (&self->lock);
		return FALSE;
	}
	for (guint i = 0; i < entries->len; i++) {
		gsize len = 0;
		const guint8 *data = g_bytes_get_data (g_ptr_array_index (entries, i), &len);
		guint64 index_be = GUINT64_TO_BE (size + i);
		guint64 offset = length + buf->len - PPN_LEDGER_CHAIN_SIZE;

		g_array_append_val (offsets, offset);
		ppn_ledger_put_record (buf, PPN_LEDGER_RECORD_ENTRY, (const guint8 *)&index_be, 8, data, len);
	}
	{
		g_autoptr(GBytes) signed_data = ppn_tree_head_signed_data (head);
		gsize sig_len = 0;
		const guint8 *sig = g_bytes_get_data (head->signature, &sig_len);

		ppn_ledger_put_record (buf, PPN_LEDGER_RECORD_HEAD, g_bytes_get_data (signed_data, NULL),
				       PPN_TREE_HEAD_SIGNED_DATA_SIZE, sig, sig_len);
	}

	if (!ppn_file_ledger_write (self, buf->data + PPN_LEDGER_CHAIN_SIZE, buf->len - PPN_LEDGER_CHAIN_SIZE,
				    length, error)) {
		g_mutex_lock (&self->lock);
		ppn_merkle_tree_truncate (self->tree, size);
		g_mutex_unlock (&self->lock);
		return FALSE;
	}

	g_mutex_lock (&self->lock);
	g_array_append_vals (self->offsets, offsets->data, offsets->len);
	self->size = head->tree_size;
	self->length = length + buf->len - PPN_LEDGER_CHAIN_SIZE;
	memcpy (self->chain, buf->data + buf->len - PPN_LEDGER_CHAIN_SIZE, PPN_LEDGER_CHAIN_SIZE);
	g_clear_pointer (&self->head, ppn_tree_head_free);
	self->head = g_steal_pointer (&head);
	g_mutex_unlock (&self->lock);
	if (first_index != NULL)
		*first_index = size;
	return TRUE;
}

static PpnTreeHead *
ppn_file_ledger_get_tree_head (PpnLedger *ledger, GError **error)
{
	PpnFileLedger *self = PPN_FILE_LEDGER (ledger);
	g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

	if (self->head == NULL) {
		g_set_error_literal (error, PPN_ERROR, PPN_ERROR_NOT_FOUND,
				     _("The ledger is empty: no tree head yet"));
		return NULL;
	}
	return ppn_tree_head_copy (self->head);
}

static gboolean
ppn_file_ledger_check_index (PpnFileLedger *self, guint64 index, GError **error)
{
	if (index >= self->size) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_NOT_FOUND,
			     _("No ledger entry %" G_GUINT64_FORMAT ": the ledger holds %" G_GUINT64_FORMAT),
			     index, self->size);
		return FALSE;
	}
	return TRUE;
}

static gboolean
ppn_file_ledger_pread (PpnFileLedger *self, guint8 *buf, gsize len, guint64 offset, GError **error)
{
	while (len > 0) {
		gssize n = pread (self->fd_read, buf, len, (off_t)offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Cannot read the ledger %s: %s"),
				     self->path, n < 0 ? g_strerror (errno) : _("it is shorter than it was"));
			return FALSE;
		}
		buf += n;
		len -= (gsize)n;
		offset += (guint64)n;
	}
	return TRUE;
}

static GBytes *
ppn_file_ledger_entry_changed (guint64 index, GError **error)
{
	g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL,
		     _("Ledger entry %" G_GUINT64_FORMAT " changed on disk since the ledger was opened"),
		     index);
	return NULL;
}

/* read from the file, and checked against the leaf verified at open */
static GBytes *
ppn_file_ledger_get_entry (PpnLedger *ledger, guint64 index, GError **error)
{
	PpnFileLedger *self = PPN_FILE_LEDGER (ledger);
	guint8 prefix[PPN_LEDGER_CHAIN_SIZE + PPN_LEDGER_PREFIX_SIZE];
	guint8 leaf[PPN_MERKLE_HASH_SIZE], actual[PPN_MERKLE_HASH_SIZE], checksum[PPN_MERKLE_HASH_SIZE];
	g_autofree guint8 *record = NULL;
	guint64 offset;
	guint32 len;
	gsize total;

	g_mutex_lock (&self->lock);
	if (!ppn_file_ledger_check_index (self, index, error)) {
		g_mutex_unlock (&self->lock);
		return NULL;
	}
	offset = g_array_index (self->offsets, guint64, index);
	ppn_merkle_tree_get_leaf (self->tree, index, leaf);
	g_mutex_unlock (&self->lock);

	if (!ppn_file_ledger_pread (self, prefix, sizeof prefix, offset - PPN_LEDGER_CHAIN_SIZE, error))
		return NULL;
	len = ppn_read_be32 (prefix + PPN_LEDGER_CHAIN_SIZE + 1);
	if (prefix[PPN_LEDGER_CHAIN_SIZE] != PPN_LEDGER_RECORD_ENTRY || len < 8 ||
	    len > 8 + PPN_FILE_LEDGER_ENTRY_MAX)
		return ppn_file_ledger_entry_changed (index, error);
	total = sizeof prefix + len + PPN_MERKLE_HASH_SIZE;
	record = g_malloc (total);
	memcpy (record, prefix, sizeof prefix);
	if (!ppn_file_ledger_pread (self, record + sizeof prefix, total - sizeof prefix,
				    offset + PPN_LEDGER_PREFIX_SIZE, error))
		return NULL;
	ppn_merkle_sha256 (record, total - PPN_MERKLE_HASH_SIZE, checksum);
	ppn_merkle_leaf_hash (record + sizeof prefix + 8, len - 8, actual);
	if (memcmp (checksum, record + total - PPN_MERKLE_HASH_SIZE, PPN_MERKLE_HASH_SIZE) != 0 ||
	    ppn_read_be64 (record + sizeof prefix) != index || memcmp (actual, leaf, sizeof leaf) != 0)
		return ppn_file_ledger_entry_changed (index, error);
	return g_bytes_new (record + sizeof prefix + 8, len - 8);
}

static gboolean
ppn_file_ledger_check_tree_size (PpnFileLedger *self, guint64 tree_size, GError **error)
{
	if (tree_size > self->size) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INVALID_REQUEST,
			     _("Tree size %" G_GUINT64_FORMAT " is larger than the ledger (%" G_GUINT64_FORMAT
			       " entries)"),
			     tree_size, self->size);
		return FALSE;
	}
	return TRUE;
}

static GPtrArray *
ppn_file_ledger_prove_inclusion (PpnLedger *ledger, guint64 index, guint64 tree_size, GError **error)
{
	PpnFileLedger *self = PPN_FILE_LEDGER (ledger);
	g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

	/* the tree may be ahead of what is committed */
	if (!ppn_file_ledger_check_tree_size (self, tree_size, error))
		return NULL;
	return ppn_merkle_tree_prove_inclusion (self->tree, index, tree_size, error);
}

static GPtrArray *
ppn_file_ledger_prove_consistency (PpnLedger *ledger, guint64 first, guint64 second, GError **error)
{
	PpnFileLedger *self = PPN_FILE_LEDGER (ledger);
	g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);

	if (!ppn_file_ledger_check_tree_size (self, second, error))
		return NULL;
	return ppn_merkle_tree_prove_consistency (self->tree, first, second, error);
}

static GBytes *
ppn_file_ledger_get_public_key (PpnLedger *ledger)
{
	return g_bytes_ref (PPN_FILE_LEDGER (ledger)->public_key_pem);
}

static void
ppn_file_ledger_iface_init (PpnLedgerInterface *iface)
{
	iface->append = ppn_file_ledger_append;
	iface->get_tree_head = ppn_file_ledger_get_tree_head;
	iface->get_entry = ppn_file_ledger_get_entry;
	iface->prove_inclusion = ppn_file_ledger_prove_inclusion;
	iface->prove_consistency = ppn_file_ledger_prove_consistency;
	iface->get_public_key = ppn_file_ledger_get_public_key;
}

/* ---- opening ----------------------------------------------------------- */

static GBytes *
ppn_file_ledger_read_file (const gchar *path, GError **error)
{
	gchar *data = NULL;
	gsize len = 0;
	g_autoptr(GError) local = NULL;

	if (!g_file_get_contents (path, &data, &len, &local)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Cannot read %s: %s"), path,
			     local->message);
		return NULL;
	}
	return g_bytes_new_take (data, len);
}

static gboolean
ppn_file_ledger_write_key_file (const gchar *path, GBytes *data, gint mode, GError **error)
{
	gsize len = 0;
	const gchar *contents = g_bytes_get_data (data, &len);
	g_autoptr(GError) local = NULL;

	if (!g_file_set_contents_full (path, contents, (gssize)len,
				       G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE, mode,
				       &local)) {
		g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL, _("Cannot write %s: %s"), path,
			     local->message);
		return FALSE;
	}
	return TRUE;
}

/* the key pair: made with a new ledger, never for one that holds
 * records (its heads would be signed by another key) */
static gboolean
ppn_file_ledger_load_keys (PpnFileLedger *self, const gchar *dir, gboolean has_records, GError **error)
{
	g_autofree gchar *key_path = g_build_filename (dir, PPN_LEDGER_KEY_FILE, NULL);
	g_autofree gchar *pub_path = g_build_filename (dir, PPN_LEDGER_PUB_FILE, NULL);
	g_autoptr(GBytes) key_pem = NULL;
	g_autoptr(GBytes) derived = NULL;

	if (!g_file_test (key_path, G_FILE_TEST_EXISTS)) {
		g_autoptr(GBytes) pub_pem = NULL;

		if (has_records) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL,
				     _("%s is missing, but the ledger %s holds records: refusing to sign its "
				       "tree heads with a new key"),
				     key_path, self->path);
			return FALSE;
		}
		if (!ppn_ledger_generate_key (&key_pem, &pub_pem, error) ||
		    !ppn_file_ledger_write_key_file (key_path, key_pem, 0600, error) ||
		    !ppn_file_ledger_write_key_file (pub_path, pub_pem, 0644, error))
			return FALSE;
	} else {
		key_pem = ppn_file_ledger_read_file (key_path, error);
		if (key_pem == NULL)
			return FALSE;
	}
	self->key = ppn_ledger_privkey_import (key_pem, error);
	if (self->key == NULL) {
		g_prefix_error (error, _("Cannot load %s: "), key_path);
		return FALSE;
	}
	derived = ppn_ledger_privkey_public_pem (self->key, error);
	if (derived == NULL)
		return FALSE;
	if (!g_file_test (pub_path, G_FILE_TEST_EXISTS)) {
		if (!ppn_file_ledger_write_key_file (pub_path, derived, 0644, error))
			return FALSE;
	} else {
		g_autoptr(GBytes) pub_pem = ppn_file_ledger_read_file (pub_path, error);
		g_autoptr(PpnPubkey) pub = NULL;
		g_autoptr(PpnPubkey) ours = NULL;

		if (pub_pem == NULL)
			return FALSE;
		pub = ppn_ledger_pubkey_import (pub_pem, error);
		ours = pub != NULL ? ppn_ledger_pubkey_import (derived, error) : NULL;
		if (ours == NULL) {
			g_prefix_error (error, _("Cannot load %s: "), pub_path);
			return FALSE;
		}
		if (!ppn_ledger_pubkey_equal (pub, ours)) {
			g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL,
				     _("%s is not the public key of %s"), pub_path, key_path);
			return FALSE;
		}
	}
	self->public_key_pem = g_steal_pointer (&derived);
	return TRUE;
}

static gboolean
ppn_file_ledger_sync_dir (const gchar *dir, GError **error)
{
	int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int errsv;

	if (fd >= 0 && fsync (fd) == 0) {
		close (fd);
		return TRUE;
	}
	errsv = errno;
	if (fd >= 0)
		close (fd);
	return ppn_ledger_set_io_error (error, errsv, _("Cannot sync %s"), dir);
}

/* a new ledger file gets its header, durably, and the append-only flag */
static gboolean
ppn_file_ledger_create (PpnFileLedger *self, const gchar *dir, GError **error)
{
	guint8 header[PPN_LEDGER_HEADER_SIZE];

	ppn_ledger_header (header);
	if (!ppn_file_ledger_write_all (self->fd_append, header, sizeof header) ||
	    fsync (self->fd_append) < 0) {
		int errsv = errno;
		int unused = 0;

		/* a header half-written would make the ledger unreadable */
		ppn_file_ledger_rollback (self, 0, &unused);
		return ppn_ledger_set_io_error (error, errsv, _("Cannot write the ledger %s"), self->path);
	}
	ppn_file_ledger_set_append_only (self->fd_append, self->path);
	return ppn_file_ledger_sync_dir (dir, error);
}

static void
ppn_file_ledger_refuse_new (const gchar *path, const gchar *key_path, GError **error)
{
	g_set_error (error, PPN_ERROR, PPN_ERROR_INTERNAL,
		     _("%s is missing or empty, but its key %s is there: the ledger was removed or emptied. "
		       "Refusing to start a new one under the same key; move the key away to start anew"),
		     path, key_path);
}

PpnFileLedger *
ppn_file_ledger_open (const gchar *dir, GError **error)
{
	g_autoptr(PpnFileLedger) self = NULL;
	g_auto(PpnLedgerScan) scan = {NULL};
	g_autoptr(PpnPubkey) pub = NULL;
	g_autofree gchar *key_path = g_build_filename (dir, PPN_LEDGER_KEY_FILE, NULL);
	struct stat st;

	g_return_val_if_fail (dir != NULL, NULL);
	self = g_object_new (PPN_TYPE_FILE_LEDGER, NULL);
	self->path = g_build_filename (dir, PPN_LEDGER_FILE, NULL);
	if (g_mkdir_with_parents (dir, 0700) < 0) {
		ppn_ledger_set_io_error (error, errno, _("Cannot create %s"), dir);
		return NULL;
	}
	/* a new ledger gets its header before its key, so a key beside no
	 * ledger, or an empty one, means a ledger that was removed */
	if (!g_file_test (self->path, G_FILE_TEST_EXISTS) && g_file_test (key_path, G_FILE_TEST_EXISTS)) {
		ppn_file_ledger_refuse_new (self->path, key_path, error);
		return NULL;
	}
	self->fd_append = open (self->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (self->fd_append < 0) {
		ppn_ledger_set_io_error (error, errno, _("Cannot open the ledger %s"), self->path);
		return NULL;
	}
	if (flock (self->fd_append, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			g_set_error (error, PPN_ERROR, PPN_ERROR_CONFLICT,
				     _("The ledger %s is open in another process"), self->path);
		else
			ppn_ledger_set_io_error (error, errno, _("Cannot lock the ledger %s"), self->path);
		return NULL;
	}
	if (fstat (self->fd_append, &st) < 0) {
		ppn_ledger_set_io_error (error, errno, _("Cannot open the ledger %s"), self->path);
		return NULL;
	}
	if (st.st_size == 0) {
		if (g_file_test (key_path, G_FILE_TEST_EXISTS)) {
			ppn_file_ledger_refuse_new (self->path, key_path, error);
			return NULL;
		}
		if (!ppn_file_ledger_create (self, dir, error))
			return NULL;
	}
	if (!ppn_file_ledger_load_keys (self, dir, st.st_size > PPN_LEDGER_HEADER_SIZE, error))
		return NULL;

	self->fd_read = ppn_ledger_open_read (self->path, error);
	if (self->fd_read < 0)
		return NULL;
	pub = ppn_ledger_pubkey_import (self->public_key_pem, error);
	if (pub == NULL)
		return NULL;
	scan.key = pub;
	scan.offsets = g_array_new (FALSE, FALSE, sizeof (guint64));
	if (!ppn_ledger_scan_file (&scan, self->fd_read)) {
		ppn_ledger_scan_to_error (&scan, error);
		g_prefix_error (error, _("Refusing the ledger %s, which does not verify: "), self->path);
		return NULL;
	}
	self->tree = g_steal_pointer (&scan.tree);
	self->offsets = g_steal_pointer (&scan.offsets);
	self->size = scan.entries;
	self->length = scan.length;
	memcpy (self->chain, scan.chain, PPN_LEDGER_CHAIN_SIZE);
	self->head = g_steal_pointer (&scan.newest);
	g_debug ("%s: %" G_GUINT64_FORMAT " entries, %" G_GUINT64_FORMAT " tree heads", self->path,
		 self->size, scan.heads);
	return g_steal_pointer (&self);
}
