#pragma once

#include "ppn-ledger.h"

G_BEGIN_DECLS

/* The embedded WORM ledger: one append-only file of entries and signed
 * tree heads in @dir (format in docs/ledger.md), with the Ed25519 key
 * pair beside it (made on first open: ledger.key 0600, ledger.pub). */
#define PPN_TYPE_FILE_LEDGER (ppn_file_ledger_get_type ())
G_DECLARE_FINAL_TYPE (PpnFileLedger, ppn_file_ledger, PPN, FILE_LEDGER, GObject)

/* opens or creates the ledger in @dir, reading and checking what is
 * there (a ledger that does not verify is refused, never rewritten) */
PpnFileLedger *ppn_file_ledger_open (const gchar *dir, GError **error);

G_END_DECLS
