package notify

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Sealer encrypts channel secrets with AES-256-GCM before they are stored. A webhook's signing
// secret must be read back to sign with, so it cannot be stored hashed; the key that seals it
// comes from the deployment's configuration (RM_SECRET_KEY) and never from the table, so a copy
// of the table alone reveals no secret. The channel's tenant and ID are bound to each sealed
// value as associated data: a sealed secret copied onto another channel does not open.
type Sealer struct {
	aead cipher.AEAD
}

// sealPrefix names the sealing scheme, so a later one can be told apart.
const sealPrefix = "v1:"

// SecretKeyBytes is the length of the sealing key.
const SecretKeyBytes = 32

// NewSealer returns a sealer with a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != SecretKeyBytes {
		return nil, fmt.Errorf("secret key: must be %d bytes, got %d", SecretKeyBytes, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// ParseSecretKey reads RM_SECRET_KEY's value: 32 bytes in standard or URL-safe base64
// (`openssl rand -base64 32`).
func ParseSecretKey(v string) ([]byte, error) {
	v = strings.TrimSpace(v)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil && len(b) == SecretKeyBytes {
			return b, nil
		}
	}
	return nil, errors.New("RM_SECRET_KEY must be 32 bytes in base64, such as the output of `openssl rand -base64 32`")
}

func channelAAD(tenantID, channelID string) []byte { return []byte(tenantID + "/" + channelID) }

// Seal encrypts a channel's secret.
func (s *Sealer) Seal(tenantID, channelID, secret string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(secret), channelAAD(tenantID, channelID))
	return sealPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts what Seal made for the same channel.
func (s *Sealer) Open(tenantID, channelID, sealed string) (string, error) {
	raw, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return "", errors.New("open secret: unknown sealing scheme")
	}
	b, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errors.New("open secret: malformed")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], channelAAD(tenantID, channelID))
	if err != nil {
		return "", errors.New("open secret: wrong key or not this channel's secret")
	}
	return string(plain), nil
}
