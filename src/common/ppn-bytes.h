#pragma once

#include <string.h>

#include <glib.h>

G_BEGIN_DECLS

/* big-endian integers out of a byte buffer at any alignment (qcow2
 * headers, the ledger's records) */
static inline guint32
ppn_read_be32 (const guint8 *p)
{
	guint32 v;

	memcpy (&v, p, sizeof v);
	return GUINT32_FROM_BE (v);
}

static inline guint64
ppn_read_be64 (const guint8 *p)
{
	guint64 v;

	memcpy (&v, p, sizeof v);
	return GUINT64_FROM_BE (v);
}

G_END_DECLS
