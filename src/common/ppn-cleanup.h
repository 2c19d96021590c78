#pragma once

/* g_autoptr() cleanups for the foreign types the project uses */
#include <glib.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gnutls/abstract.h>

G_BEGIN_DECLS

typedef struct gnutls_x509_crt_int PpnX509Crt;
typedef struct gnutls_x509_privkey_int PpnX509Privkey;
typedef struct gnutls_privkey_st PpnPrivkey;
typedef struct gnutls_pubkey_st PpnPubkey;
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnX509Crt, gnutls_x509_crt_deinit)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnX509Privkey, gnutls_x509_privkey_deinit)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnPrivkey, gnutls_privkey_deinit)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PpnPubkey, gnutls_pubkey_deinit)

typedef gnutls_datum_t PpnGnutlsDatum;
static inline void
ppn_gnutls_datum_clear (PpnGnutlsDatum *d)
{
	gnutls_free (d->data);
	d->data = NULL;
	d->size = 0;
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (PpnGnutlsDatum, ppn_gnutls_datum_clear)

G_END_DECLS
