// This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
// distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
/*
 * Hygie's KMS client for parquet-mr (Parquet modular encryption in Apache Spark).
 *
 * parquet-mr's PropertiesDrivenCryptoFactory generates each file's data keys and key-encryption keys (KEKs) and
 * asks this client to wrap a KEK under a master key, or to unwrap it. The master keys never leave Hygie's key
 * custody: this client forwards each request to the custody channel that the Spark driver serves
 * (hygie.warehouse.spark), authenticated by a per-job token. The token only authorises calls while that job's
 * grant is open, for the master keys the grant names; it decrypts nothing by itself.
 *
 * Configuration (Hadoop): hygie.custody.url (the channel, e.g. https://127.0.0.1:PORT), hygie.custody.tls.sha256
 * (the SHA-256 of the channel's certificate: the only certificate trusted, so the token and the KEKs cross no
 * socket in clear and reach no other server) and the standard parquet.encryption.key.access.token (the grant's
 * token). Nothing here logs a key, a wrapped key or the token.
 *
 * Compiled from source by hygie.warehouse.spark (javac against the jars pyspark ships); no other dependency.
 */
package org.hygie.kms;

import java.io.IOException;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.Base64;
import java.util.HexFormat;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509ExtendedTrustManager;

import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.crypto.KeyAccessDeniedException;
import org.apache.parquet.crypto.ParquetCryptoRuntimeException;
import org.apache.parquet.crypto.keytools.KmsClient;

public class HygieKmsClient implements KmsClient {
  public static final String URL_PROPERTY = "hygie.custody.url";
  public static final String PIN_PROPERTY = "hygie.custody.tls.sha256";
  private static final Duration TIMEOUT = Duration.ofSeconds(60);

  private HttpClient http;
  private URI base;
  private String token;

  @Override
  public void initialize(Configuration conf, String kmsInstanceID, String kmsInstanceURL, String accessToken)
      throws KeyAccessDeniedException {
    String url = conf.getTrimmed(URL_PROPERTY);
    if (url == null || url.isEmpty()) {
      throw new ParquetCryptoRuntimeException(
          "Hygie custody channel not configured (" + URL_PROPERTY + "): open the Spark session with "
              + "hygie.warehouse.spark.spark_session");
    }
    if (accessToken == null || accessToken.isEmpty() || KmsClient.KEY_ACCESS_TOKEN_DEFAULT.equals(accessToken)) {
      throw new KeyAccessDeniedException(
          "no custody grant for this Spark job: read and write encrypted Parquet through "
              + "hygie.warehouse.spark (read_parquet / write_parquet inside a custody grant)");
    }
    String pin = conf.getTrimmed(PIN_PROPERTY);
    if (!url.startsWith("https://") || pin == null || pin.length() != 64) {
      throw new ParquetCryptoRuntimeException(
          "Hygie custody channel must be HTTPS with a pinned certificate (" + PIN_PROPERTY + ")");
    }
    this.base = URI.create(url.endsWith("/") ? url : url + "/");
    this.token = accessToken;
    try {
      SSLContext tls = SSLContext.getInstance("TLS");
      tls.init(null, new TrustManager[] {new Pinned(HexFormat.of().parseHex(pin))}, null);
      this.http = HttpClient.newBuilder().connectTimeout(TIMEOUT).sslContext(tls).build();
    } catch (GeneralSecurityException e) {
      throw new ParquetCryptoRuntimeException("cannot set up TLS to Hygie custody: " + e.getClass().getSimpleName());
    }
  }

  @Override
  public String wrapKey(byte[] keyBytes, String masterKeyIdentifier) throws KeyAccessDeniedException {
    String key = Base64.getEncoder().encodeToString(keyBytes);
    return call("wrap", masterKeyIdentifier, key);
  }

  @Override
  public byte[] unwrapKey(String wrappedKey, String masterKeyIdentifier) throws KeyAccessDeniedException {
    return Base64.getDecoder().decode(call("unwrap", masterKeyIdentifier, wrappedKey));
  }

  /** POST op with "<master key id>\n<base64 payload>"; the answer is one base64 line. */
  private String call(String op, String masterKeyIdentifier, String payload) throws KeyAccessDeniedException {
    if (masterKeyIdentifier.indexOf('\n') >= 0) {
      throw new KeyAccessDeniedException("malformed master key identifier");
    }
    byte[] body = (masterKeyIdentifier + "\n" + payload).getBytes(StandardCharsets.US_ASCII);
    HttpRequest request = HttpRequest.newBuilder(base.resolve(op))
        .timeout(TIMEOUT)
        .header("Authorization", "Bearer " + token)
        .header("Content-Type", "text/plain")
        .POST(HttpRequest.BodyPublishers.ofByteArray(body))
        .build();
    HttpResponse<String> response;
    try {
      response = http.send(request, HttpResponse.BodyHandlers.ofString(StandardCharsets.US_ASCII));
    } catch (IOException e) {
      throw new ParquetCryptoRuntimeException(
          "Hygie custody channel unreachable (" + e.getClass().getSimpleName() + "): is the Spark driver that "
              + "opened the grant still running, and can this executor reach it? (docs/spark.md)");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ParquetCryptoRuntimeException("interrupted while waiting for Hygie custody");
    }
    int status = response.statusCode();
    if (status == 200) {
      return response.body().trim();
    }
    String reason = response.body().trim();
    if (status == 401 || status == 403) {
      throw new KeyAccessDeniedException(
          "Hygie custody refused to " + op + " a key under master key '" + masterKeyIdentifier + "': " + reason);
    }
    throw new ParquetCryptoRuntimeException(
        "Hygie custody failed to " + op + " a key under master key '" + masterKeyIdentifier + "' (HTTP " + status
            + "): " + reason);
  }

  /** Trusts exactly one server certificate: the channel's, by the SHA-256 of its DER encoding. */
  static final class Pinned extends X509ExtendedTrustManager {
    private final byte[] pin;

    Pinned(byte[] pin) {
      this.pin = pin;
    }

    private void check(X509Certificate[] chain) throws CertificateException {
      if (chain == null || chain.length == 0) {
        throw new CertificateException("no certificate from the custody channel");
      }
      byte[] seen;
      try {
        seen = MessageDigest.getInstance("SHA-256").digest(chain[0].getEncoded());
      } catch (GeneralSecurityException e) {
        throw new CertificateException("cannot hash the custody channel's certificate");
      }
      if (!MessageDigest.isEqual(seen, pin)) {
        throw new CertificateException("the custody channel's certificate is not the pinned one");
      }
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
      check(chain);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
        throws CertificateException {
      check(chain);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
        throws CertificateException {
      check(chain);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
      throw new CertificateException("client side only");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
        throws CertificateException {
      throw new CertificateException("client side only");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
        throws CertificateException {
      throw new CertificateException("client side only");
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
      return new X509Certificate[0];
    }
  }
}
