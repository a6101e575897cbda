package localcluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CertUser is the role Options.TLS creates that can log in only over TLS
// with a client certificate (pg_hba method cert): no password works for
// it. It is a member of walprobe, so it holds walprobe's grants, and has
// REPLICATION for the logical stream.
const CertUser = "walprobe_cert"

// TLS is what Options.TLS generated: a throwaway CA made with crypto/x509
// when the cluster started, the server certificate every server of the
// cluster presents, client certificates, and decoys. All fields are PEM
// file paths inside Dir.
type TLS struct {
	Dir string
	// CA signed the server and client certificates; the servers trust it
	// for client certificates (ssl_ca_file).
	CA string
	// Bundle is a CA bundle in the shape cloud providers ship (Amazon RDS's
	// global-bundle.pem): several unrelated root CAs concatenated, CA
	// among them, not first.
	Bundle string
	// OtherCA signed nothing the servers present: the wrong sslrootcert.
	OtherCA string
	// ServerNames are the DNS names and IP addresses in the server
	// certificate's subjectAltName ([Options.TLSServerNames]).
	ServerNames           []string
	ServerCert, ServerKey string
	// ClientCert has CN=CertUser and is signed by CA.
	ClientCert, ClientKey string
	// StrangerCert has CN=CertUser but is signed by OtherCA: the servers
	// must refuse it.
	StrangerCert, StrangerKey string
	// WrongCNCert is signed by CA for CN=postgres: cert authentication as
	// CertUser must refuse it.
	WrongCNCert, WrongCNKey string
}

// DefaultTLSServerNames is what the server certificate is valid for
// unless Options.TLSServerNames says otherwise.
var DefaultTLSServerNames = []string{"localhost", "127.0.0.1"}

// newTLS generates every certificate and key into dir/tls, owned by the
// server user (PostgreSQL refuses a key file others can read).
func newTLS(e *env, names []string) (*TLS, error) {
	if len(names) == 0 {
		names = DefaultTLSServerNames
	}
	dir := filepath.Join(e.dir, "tls")
	t := &TLS{
		Dir:          dir,
		CA:           filepath.Join(dir, "ca.crt"),
		Bundle:       filepath.Join(dir, "bundle.pem"),
		OtherCA:      filepath.Join(dir, "other-ca.crt"),
		ServerNames:  names,
		ServerCert:   filepath.Join(dir, "server.crt"),
		ServerKey:    filepath.Join(dir, "server.key"),
		ClientCert:   filepath.Join(dir, "client.crt"),
		ClientKey:    filepath.Join(dir, "client.key"),
		StrangerCert: filepath.Join(dir, "stranger.crt"),
		StrangerKey:  filepath.Join(dir, "stranger.key"),
		WrongCNCert:  filepath.Join(dir, "wrongcn.crt"),
		WrongCNKey:   filepath.Join(dir, "wrongcn.key"),
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if err := e.runAs.chown(dir); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	ca, err := newCA("walprobe test CA")
	if err != nil {
		return nil, err
	}
	other, err := newCA("walprobe unrelated CA")
	if err != nil {
		return nil, err
	}
	third, err := newCA("walprobe another unrelated CA")
	if err != nil {
		return nil, err
	}
	server, err := ca.issue(names[0], names, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	client, err := ca.issue(CertUser, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	stranger, err := other.issue(CertUser, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	wrongCN, err := ca.issue("postgres", nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	files := []struct{ path, pem string }{
		{t.CA, ca.certPEM},
		{t.Bundle, other.certPEM + ca.certPEM + third.certPEM},
		{t.OtherCA, other.certPEM},
		{t.ServerCert, server.certPEM}, {t.ServerKey, server.keyPEM},
		{t.ClientCert, client.certPEM}, {t.ClientKey, client.keyPEM},
		{t.StrangerCert, stranger.certPEM}, {t.StrangerKey, stranger.keyPEM},
		{t.WrongCNCert, wrongCN.certPEM}, {t.WrongCNKey, wrongCN.keyPEM},
	}
	for _, f := range files {
		if err := e.runAs.writeFile(f.path, f.pem); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	return t, nil
}

// conf turns TLS on and points the servers at the certificates and at an
// hba file in which CertUser must present a client certificate.
// Standbys inherit both through pg_basebackup.
func (t *TLS) conf(e *env) ([]string, error) {
	hba := filepath.Join(t.Dir, "pg_hba.conf")
	lines := strings.Join([]string{
		"local all postgres trust",
		fmt.Sprintf("hostssl all %s 127.0.0.1/32 cert", CertUser),
		fmt.Sprintf("host all %s 127.0.0.1/32 reject", CertUser),
		// Password users may still connect in plain text: sslmode=disable
		// is part of what the tests cover, and the harness's own
		// connections use it.
		"host all all 127.0.0.1/32 scram-sha-256",
		"host replication all 127.0.0.1/32 scram-sha-256",
		"",
	}, "\n")
	if err := e.runAs.writeFile(hba, lines); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return []string{
		"ssl = on",
		"ssl_cert_file = " + quoteLiteral(t.ServerCert),
		"ssl_key_file = " + quoteLiteral(t.ServerKey),
		"ssl_ca_file = " + quoteLiteral(t.CA),
		"hba_file = " + quoteLiteral(hba),
	}, nil
}

// createCertUser creates CertUser on a server made by initdb.
func createCertUser(ctx context.Context, s *Server) error {
	if err := s.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION IN ROLE walprobe", CertUser)); err != nil {
		return fmt.Errorf("create %s: %w", CertUser, err)
	}
	return nil
}

type keyPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM string
	keyPEM  string
}

func newCA(cn string) (*keyPair, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"walprobe tests"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return sign(tmpl, nil)
}

// issue makes a leaf certificate for cn signed by ca. names go into the
// subjectAltName, IP addresses as IP SANs.
func (ca *keyPair) issue(cn string, names []string, usage x509.ExtKeyUsage) (*keyPair, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return sign(tmpl, ca)
}

// sign completes tmpl with a fresh P-256 key, serial and validity and signs
// it with parent, or with itself when parent is nil.
func sign(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tls: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("tls: serial: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(7 * 24 * time.Hour)
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, fmt.Errorf("tls: sign %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		keyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})),
	}, nil
}
