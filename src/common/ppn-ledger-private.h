#pragma once

/* the ledger's Ed25519 keys as gnutls objects, shared by ppn-ledger.c
 * and ppn-file-ledger.c only, so that a ledger imports its keys once
 * rather than once a tree head */
#include "ppn-cleanup.h"
#include "ppn-ledger.h"

G_BEGIN_DECLS

PpnPrivkey *ppn_ledger_privkey_import (GBytes *pem, GError **error);
PpnPubkey *ppn_ledger_pubkey_import (GBytes *pem, GError **error);
/* the public half of @key, PEM */
GBytes *ppn_ledger_privkey_public_pem (gnutls_privkey_t key, GError **error);
gboolean ppn_ledger_pubkey_equal (gnutls_pubkey_t a, gnutls_pubkey_t b);

gboolean ppn_tree_head_sign_with (PpnTreeHead *head, gnutls_privkey_t key, GError **error);
gboolean ppn_tree_head_verify_with (const PpnTreeHead *head, gnutls_pubkey_t key, GError **error);

G_END_DECLS
