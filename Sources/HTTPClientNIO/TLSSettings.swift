import HTTPSidecarEngines
import MeshCore
import NIOCore
import NIOSSL

/// Builds the TLS contexts of the settings (``ServerTLS``, ``UpstreamTLS``) from their files.
extension ServerTLS {
    /// Reads the files and builds the context; fails naming the file that is wrong.
    public func makeContext() throws -> NIOSSLContext {
        var config = TLSConfiguration.makeServerConfiguration(
            certificateChain: try TLSFiles.certificates(certificateFile).map { .certificate($0) },
            privateKey: .privateKey(try TLSFiles.key(keyFile)))
        config.minimumTLSVersion = .tlsv12
        if let clientCAFile {
            config.trustRoots = .certificates(try TLSFiles.certificates(clientCAFile))
            config.certificateVerification = .noHostnameVerification
        }
        return try TLSFiles.context(config, certificateFile)
    }
}

extension UpstreamTLS {
    public func makeContext() throws -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        config.minimumTLSVersion = .tlsv12
        config.certificateVerification = .fullVerification
        if let caFile { config.trustRoots = .certificates(try TLSFiles.certificates(caFile)) }
        switch (certificateFile, keyFile) {
        case (let cert?, let key?):
            config.certificateChain = try TLSFiles.certificates(cert).map { .certificate($0) }
            config.privateKey = .privateKey(try TLSFiles.key(key))
        case (nil, nil):
            break
        default:
            throw TLSSetupError(file: certificateFile ?? keyFile ?? "", detail: "a client certificate needs both a certificate and a key file")
        }
        return try TLSFiles.context(config, caFile ?? certificateFile ?? "system trust roots")
    }

    /// The SNI and verification name for a connection to `host`: nil for an IP literal, which NIOSSL
    /// then verifies against the peer's address.
    package func hostname(for host: String) -> String? {
        if let serverName { return serverName }
        let isIP = host.contains(":") || host.split(separator: ".").allSatisfy { UInt8($0) != nil }
        return isIP ? nil : host
    }
}

/// A ready TLS client side for one upstream: the context (built once) and the name to verify.
package struct ClientTLS: Sendable {
    package let context: NIOSSLContext
    package let hostname: String?
}

package enum TLSFiles {
    package static func certificates(_ file: String) throws -> [NIOSSLCertificate] {
        do {
            let certs = try NIOSSLCertificate.fromPEMFile(file)
            guard !certs.isEmpty else { throw TLSSetupError(file: file, detail: "no PEM certificate in the file") }
            return certs
        } catch let error as TLSSetupError {
            throw error
        } catch {
            throw TLSSetupError(file: file, detail: "not a readable PEM certificate file (\(error))")
        }
    }

    package static func key(_ file: String) throws -> NIOSSLPrivateKey {
        do {
            return try NIOSSLPrivateKey(file: file, format: .pem)
        } catch {
            throw TLSSetupError(file: file, detail: "not a readable PEM private key (\(error))")
        }
    }

    package static func context(_ config: TLSConfiguration, _ file: String) throws -> NIOSSLContext {
        do {
            return try NIOSSLContext(configuration: config)
        } catch {
            throw TLSSetupError(file: file, detail: "TLS setup failed (\(error)); does the key match the certificate?")
        }
    }
}
