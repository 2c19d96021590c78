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

/* the largest entry an append takes, in bytes */
#define PPN_FILE_LEDGER_ENTRY_MAX (16 * 1024 * 1024)

/* what offline verification found wrong first */
typedef enum {
	PPN_LEDGER_PROBLEM_NONE,       /* all of it verified */
	PPN_LEDGER_PROBLEM_IO,	       /* the file or the key cannot be read */
	PPN_LEDGER_PROBLEM_HEADER,     /* not a ppn ledger, or of another version */
	PPN_LEDGER_PROBLEM_RECORD,     /* a record that cannot be one: type, length, layout */
	PPN_LEDGER_PROBLEM_CHECKSUM,   /* a record's checksum does not match its bytes */
	PPN_LEDGER_PROBLEM_ORDER,      /* an entry out of place: one removed, inserted or moved */
	PPN_LEDGER_PROBLEM_ROOT,       /* a tree head that does not describe the entries before it */
	PPN_LEDGER_PROBLEM_SIGNATURE,  /* a tree head whose signature does not verify */
	PPN_LEDGER_PROBLEM_HEAD_ORDER, /* a tree head whose size or time goes backwards */
	PPN_LEDGER_PROBLEM_TORN_TAIL,  /* the file ends inside a record, or in entries no head covers */
	PPN_LEDGER_PROBLEM_PUBLISHED,  /* shorter than, or inconsistent with, the published head */
} PpnLedgerProblem;

/* bad_index when the problem cannot be pinned on one entry */
#define PPN_LEDGER_NO_INDEX G_MAXUINT64

typedef struct {
	guint64 entries;	  /* entries covered by verified tree heads */
	guint64 tree_heads;	  /* tree heads verified */
	PpnTreeHead *newest_head; /* the newest verified head, NULL if none */
	PpnLedgerProblem problem;
	guint64 bad_index;  /* the first entry not known good, or PPN_LEDGER_NO_INDEX */
	guint64 bad_offset; /* byte offset of the record at fault */
	gchar *message;	    /* NULL when it all verified; else the error's message */
} PpnLedgerVerifyResult;

void ppn_ledger_verify_result_clear (PpnLedgerVerifyResult *result);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (PpnLedgerVerifyResult, ppn_ledger_verify_result_clear)
/* "checksum", "signature", ...: for scripts */
const gchar *ppn_ledger_problem_to_string (PpnLedgerProblem problem);

/* recomputes everything from the ledger file at @path alone: every
 * record's checksum, the order of the entries, every tree head's root
 * and signature (with @public_key_pem), and, given @published_head (a
 * head seen elsewhere, say by a tenant), that the ledger still holds
 * that tree. FALSE with @error (PPN_ERROR_INVALID_REQUEST when it does
 * not verify, its message starting "entry N: " when an entry can be
 * named) and @result saying what was found. @result may be NULL; it is
 * overwritten, so one reused is cleared first. */
gboolean ppn_file_ledger_verify (const gchar *path,
				 GBytes *public_key_pem,
				 const PpnTreeHead *published_head,
				 PpnLedgerVerifyResult *result,
				 GError **error);

G_END_DECLS
