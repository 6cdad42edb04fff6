import Dispatch
import Foundation
import SidecarAuth

/// JWT in the simulated ingress: the product's `JWTAuthenticator` with the public test key of
/// fixtures/jwt, and tokens signed with its private key (made once with openssl; see
/// fixtures/jwt/README.md). The authenticator's API is async; the simulator is not, so it is built
/// and each token's signature checked (by the product's code) before the run starts, and the run
/// then gets every verdict from the authenticator without waiting (its verified tokens, with their
/// claims checked afresh at each use, against a fixed wall clock).
enum SimJWT {
    /// The JWKS with the RSA test key (`test-rsa`, RS256).
    static let jwks = #"{"keys":[{"kty":"RSA","kid":"test-rsa","alg":"RS256","use":"sig","n":"xg1OfDgI1cpAOo_s3yaw9c1_Bh6_s6qlu7SEHCB5MzO5IApdTSUj90JLWf3ssggMjdwa7ryBEVWPK7mYdpQcUG9-e4ddM25LxT5VeD4fNkOYdeH8EUyRRdzf63D9C_UClrUzC6tdvmzSNzNWY30KFSY_YMxMKM9zdrgKla6GsFfIuJRm5Bpkb1RroM89scO7N0eqV-ZNjREcuRq5tFuOeioVcdwd5ECCxcA3Te0_yN8HHoBjASRu6Rm6J4butU-dAVDEaVv2qyuoFaJwGXWtC-N8yH1W3og0VCNnvy7hKPvYEV6KMVk8HuJiTCbHNyvLzX131wwCAYf8LnqWWQR87w","e":"AQAB"}]}"#

    /// Subject `sim-reader`, scope `pets:read`, expiring in 2100.
    static let reader = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InRlc3QtcnNhIn0.eyJzdWIiOiJzaW0tcmVhZGVyIiwiZXhwIjo0MTAyNDQ0ODAwLCJzY29wZSI6InBldHM6cmVhZCJ9.JkaWbDWMhpT2uRX9BGaThIiT1ZnqYQY5v-QRC11xQuYZA1LsNslDlL1sEfJLOvd0FDJtLo1_4xsEWAmx65-LKwwI_Wi7w4AMb6gbmAHFQnRyqTQGqYeB1Z5myb2CWo5PqpuKMbnDBJhRkypS25p3Xas38WD-enOuC-KEm4C8miCTqwmS8yVz-aY05AVu5ZWFGF5Ztpj2ahX_3hdfRj3wj1ywqaApPiLC-2sw2M-4fZ9BMZOTQgj2Ncuskyfh8GUszuqMn8Tf3p5j2IyTCfOx1sPb885LaEmFI81SNDUvZaGRLBMeYCwJ242wVrFQR-QnlHBkxcW2JnqKqV38A-ztLw"
    /// Subject `sim-admin`, scopes `pets:read pets:admin`, expiring in 2100.
    static let admin = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InRlc3QtcnNhIn0.eyJzdWIiOiJzaW0tYWRtaW4iLCJleHAiOjQxMDI0NDQ4MDAsInNjb3BlIjoicGV0czpyZWFkIHBldHM6YWRtaW4ifQ.tmcq0_mX0zvT6ALwJ_umBUMc0VXNd2Fm5ptcTRx8z1ol5b79z6KHPUvnM2YysVtrZvkAOObILGKGpvXOT5aVsvC7UG4_ia6ABtBouPFMCvMY5COexBroITKviXtHRggPPSI3lCeipBK0f9SI-MxjEbdBB-7xPh6LJ7UJZYCJi01sXk7Q0W8MpUE6Rj5pUcdrMqqpB0ExfibP1OZwhLCbVMBoLOzk0niP_LEw6b6_9CCn509L0NdHH1zfSrYaOVzA0CizKSHGmBpvkD9JNHUioLvn1_i6pp6C11bwQq8YEGox8Jd1B0GI_KfJTgSbNBUKU3oODMeetBidmnWkJZi86w"
    /// Subject `sim-late`, both scopes, expired in 2017.
    static let expired = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InRlc3QtcnNhIn0.eyJzdWIiOiJzaW0tbGF0ZSIsImV4cCI6MTUwMDAwMDAwMCwic2NvcGUiOiJwZXRzOnJlYWQgcGV0czphZG1pbiJ9.tOTewjXLXrp5CzXLO-g1SC5ByFbZiRpjJyRTAFNKMVMOkCabK2BKeUNAeqTfCKW_rZhNOokV9Q4OC0QR6nEegxuVgdb5TmtHjObXGGu3-KcOgP9_uSb-oLDcq8qkqla3UIGik6kzYe0TPwngol46JLKeP707_dKADwKQk-emKr3hZP1_tVooRYRPxDFLRlAp-ntaAilnSFaD5sADzpOWc6XYlm_HAbj70eNwj7oXiiQScGD3-3qptNGYrDTd-OccLCnIo_R0Q0tKc052hep_UdHvCPYvIlwhrAvmtpsZgeLrRTwQ1XzFBKRIcVHVZFn0TRkRyPEsti32W8yVZfnPZQ"

    /// The wall clock the claims are checked against (2027-01-15).
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// `/secure/admin` and below need `pets:admin`.
    static var policy: JWTPolicy {
        var p = JWTPolicy()
        p.requiredScopes = [("/secure/admin", ["pets:admin"])]
        return p
    }

    /// A fresh authenticator with the test tokens' signatures already verified.
    static func authenticator() -> JWTAuthenticator {
        OffTheRun.wait {
            let jwt = try! await JWTAuthenticator(policy: policy, wallClock: { now }, loadJWKS: { jwks })
            for token in [reader, admin, expired] { _ = await jwt.authenticate(authorization: "Bearer " + token, path: "/") }
            return jwt
        }
    }
}

/// Runs async work to its end from synchronous code, on a queue of its own: with that queue as the
/// work's executor preference, nothing of it needs the cooperative pool the caller may be blocking
/// (a test runs scenarios on it).
enum OffTheRun {
    final class QueueExecutor: TaskExecutor, @unchecked Sendable {
        let queue = DispatchQueue(label: "light-mesh.sim.off-the-run")
        func enqueue(_ job: consuming ExecutorJob) {
            let job = UnownedJob(job)
            queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
        }
    }

    final class Box<T>: @unchecked Sendable { var value: T? }

    static let executor = QueueExecutor()

    static func wait<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
        let box = Box<T>()
        let done = DispatchSemaphore(value: 0)
        Task(executorPreference: executor) {
            box.value = await work()
            done.signal()
        }
        done.wait()
        return box.value!
    }
}
