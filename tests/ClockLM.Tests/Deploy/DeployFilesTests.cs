using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ClockLM.Tests.Deploy;

/// <summary>
/// The files in deploy/: the Kubernetes manifests (read by kubectl itself, offline: `kubectl kustomize` and
/// `kubectl label --local -o json`, since `apply --dry-run=client` needs a cluster), the HAProxy configurations
/// (`haproxy -c`) and the Dockerfile, checked against each other. Skipped visibly without kubectl or haproxy.
/// </summary>
public sealed class DeployFilesTests
{
    private static string Deploy(params string[] parts) => Path.Combine([SharedData.RepoRoot, "deploy", .. parts]);

    [ProgramFact("kubectl")]
    public void KubernetesManifestsProbeHealthRequestResourcesAndOutlastTheDrain()
    {
        var objects = KubectlObjects();
        JsonElement Find(string kind, string name) =>
            objects.Single(o => o.GetProperty("kind").GetString() == kind && o.GetProperty("metadata").GetProperty("name").GetString() == name);

        var deployment = Find("Deployment", "clocklm");
        var spec = deployment.GetProperty("spec");
        Assert.True(spec.GetProperty("replicas").GetInt32() >= 2);
        var labels = spec.GetProperty("template").GetProperty("metadata").GetProperty("labels");
        foreach (var selector in spec.GetProperty("selector").GetProperty("matchLabels").EnumerateObject())
            Assert.Equal(selector.Value.GetString(), labels.GetProperty(selector.Name).GetString());
        var pod = spec.GetProperty("template").GetProperty("spec");
        var container = pod.GetProperty("containers").EnumerateArray().Single();
        var port = container.GetProperty("ports").EnumerateArray().Single();
        Assert.Equal(DockerfilePort(), port.GetProperty("containerPort").GetInt32());
        string portName = port.GetProperty("name").GetString()!;

        // Readiness fails at once when a replica drains; liveness tolerates the drain; the grace period outlasts it.
        string[] args = [.. container.GetProperty("args").EnumerateArray().Select(a => a.GetString()!)];
        int drain = int.Parse(args[Array.IndexOf(args, "--drain-timeout") + 1]);
        int grace = pod.GetProperty("terminationGracePeriodSeconds").GetInt32();
        Assert.True(grace > drain, $"terminationGracePeriodSeconds {grace} <= --drain-timeout {drain}");
        foreach (string probe in new[] { "readinessProbe", "livenessProbe" })
        {
            var get = container.GetProperty(probe).GetProperty("httpGet");
            Assert.Equal("/health", get.GetProperty("path").GetString());
            Assert.Equal(portName, get.GetProperty("port").GetString());
        }
        var liveness = container.GetProperty("livenessProbe");
        Assert.True(liveness.GetProperty("periodSeconds").GetInt32() * liveness.GetProperty("failureThreshold").GetInt32() > grace,
            "liveness would restart a draining replica");
        var requests = container.GetProperty("resources").GetProperty("requests");
        Assert.True(requests.TryGetProperty("cpu", out _) && requests.TryGetProperty("memory", out _), "resource requests for cpu and memory");

        // The model volume's claim exists; the Services select the pods and reach the named port.
        string claim = pod.GetProperty("volumes").EnumerateArray().Single().GetProperty("persistentVolumeClaim").GetProperty("claimName").GetString()!;
        Find("PersistentVolumeClaim", claim);
        foreach (string name in new[] { "clocklm", "clocklm-replicas" })
        {
            var service = Find("Service", name).GetProperty("spec");
            foreach (var selector in service.GetProperty("selector").EnumerateObject())
                Assert.Equal(selector.Value.GetString(), labels.GetProperty(selector.Name).GetString());
            Assert.Equal(portName, service.GetProperty("ports")[0].GetProperty("targetPort").GetString());
        }
        Assert.Equal("None", Find("Service", "clocklm-replicas").GetProperty("spec").GetProperty("clusterIP").GetString());

        // The balancer in the cluster finds the replicas through the headless Service.
        string config = Find("ConfigMap", "clocklm-haproxy").GetProperty("data").GetProperty("haproxy.cfg").GetString()!;
        Assert.Matches(@"server-template \w+ \d+ clocklm-replicas\.[a-z0-9-]+\.svc\.cluster\.local:" + DockerfilePort(), config);
    }

    [ProgramFact("/usr/sbin/haproxy")]
    public void HaproxyConfigurationsAreValid()
    {
        using var dir = new TempDir();
        string inCluster = dir.File("k8s.cfg");
        string manifest = File.ReadAllText(Deploy("k8s", "haproxy.yaml"));
        var block = Regex.Match(manifest, @"haproxy\.cfg: \|\n((?:    .*\n|\n)+)");
        Assert.True(block.Success, "no haproxy.cfg in deploy/k8s/haproxy.yaml");
        File.WriteAllText(inCluster, Regex.Replace(block.Groups[1].Value, "^    ", "", RegexOptions.Multiline));
        var environment = new Dictionary<string, string>
        {
            ["CLOCKLM_LISTEN"] = "127.0.0.1:18080",
            ["CLOCKLM_REPLICA_1"] = "127.0.0.1:18081",
            ["CLOCKLM_REPLICA_2"] = "127.0.0.1:18082",
            ["CLOCKLM_REPLICA_3"] = "127.0.0.1:18083",
        };
        foreach (string file in new[] { Deploy("haproxy", "haproxy.cfg"), inCluster })
        {
            var (code, output) = Run("/usr/sbin/haproxy", ["-c", "-f", file], environment: environment);
            Assert.True(code == 0, $"{file}: {output}");
        }
    }

    [Fact]
    public void TheImageServesOnAllInterfacesAndTheDocumentedPort()
    {
        string dockerfile = File.ReadAllText(Deploy("Dockerfile"));
        var entrypoint = JsonSerializer.Deserialize<string[]>(Regex.Match(dockerfile, @"^ENTRYPOINT (\[.*\])$", RegexOptions.Multiline).Groups[1].Value)!;
        Assert.Equal(["dotnet", "/app/clocklm.dll", "serve", "--host", "0.0.0.0", "--port", DockerfilePort().ToString()], entrypoint);
        Assert.Matches(@"RUN dotnet publish src/ClockLM.Cli -c Release -o /app", dockerfile);
        Assert.Matches(@"FROM mcr\.microsoft\.com/dotnet/aspnet:10\.0", dockerfile); // the server needs ASP.NET Core
        Assert.True(File.Exists(Path.Combine(SharedData.RepoRoot, ".dockerignore")), "no .dockerignore: bin/ and obj/ would enter the build");
    }

    private static int DockerfilePort() =>
        int.Parse(Regex.Match(File.ReadAllText(Deploy("Dockerfile")), @"^EXPOSE (\d+)$", RegexOptions.Multiline).Groups[1].Value);

    /// <summary>Every object of deploy/k8s as kubectl reads it: the kustomization rendered, then decoded to JSON.</summary>
    private static List<JsonElement> KubectlObjects()
    {
        var (code, yaml) = Run("kubectl", ["kustomize", Deploy("k8s")]);
        Assert.True(code == 0, yaml);
        (code, string json) = Run("kubectl", ["label", "--local", "-f", "-", "checked=true", "-o", "json"], input: yaml);
        Assert.True(code == 0, json);
        var objects = new List<JsonElement>();
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json), new JsonReaderOptions { AllowMultipleValues = true });
        while (reader.Read()) objects.Add(JsonElement.ParseValue(ref reader));
        Assert.Equal(["ConfigMap", "Deployment", "Deployment", "PersistentVolumeClaim", "Service", "Service", "Service"],
            objects.Select(o => o.GetProperty("kind").GetString()).Order());
        return objects;
    }

    private static (int ExitCode, string Output) Run(string program, string[] args, string? input = null, Dictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = input is not null,
            UseShellExecute = false,
        };
        foreach (var a in args) info.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? []) info.Environment[k] = v;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            process.StandardInput.Write(input);
            process.StandardInput.Close();
        }
        if (!process.WaitForExit(60_000))
        {
            process.Kill();
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in a minute");
        }
        return (process.ExitCode, process.ExitCode == 0 ? stdout.Result : stdout.Result + stderr.Result);
    }
}

/// <summary>A test that needs a program (a path, or a name looked up on PATH); skipped visibly where it is missing.</summary>
public sealed class ProgramFactAttribute : FactAttribute
{
    public ProgramFactAttribute(string program)
    {
        bool found = program.Contains('/')
            ? File.Exists(program)
            : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(dir => dir.Length > 0 && File.Exists(Path.Combine(dir, program)));
        if (!found) Skip = $"{program} is not installed";
    }
}
