// Prints X500Principal.getName() (RFC 2253) for each file named on the command line,
// one line each, as hex of its UTF-8 bytes so no console charset gets in the way.
// `*.crt` files are DER certificates (the subject is printed); other files are DER Names.
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import javax.security.auth.x500.X500Principal;

public class X500Names {
    public static void main(String[] args) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        for (String arg : args) {
            byte[] der = Files.readAllBytes(Path.of(arg));
            String name;
            try {
                X500Principal p = arg.endsWith(".crt")
                        ? ((X509Certificate) cf.generateCertificate(new java.io.ByteArrayInputStream(der)))
                                .getSubjectX500Principal()
                        : new X500Principal(der);
                name = p.getName();
            } catch (Exception e) {
                System.out.println("ERR " + e.getClass().getSimpleName());
                continue;
            }
            StringBuilder hex = new StringBuilder();
            for (byte b : name.getBytes(StandardCharsets.UTF_8)) {
                hex.append(String.format("%02x", b & 0xff));
            }
            System.out.println("OK " + hex);
        }
    }
}
