using Mono.Cecil;
using Mono.Cecil.Cil;

// KeepAliveWeaver ASSEMBLY REPLACEMENTS [SEARCH_DIR ...]
//
// Rewrites, in ASSEMBLY (in place, its portable PDB with it), every call to a TorchSharp member that has a
// stand-in in REPLACEMENTS (GuidedDiffusion.dll: the methods of GuidedDiffusion.Runtime.FinalizerSafeTorch marked
// [ReplacesTorchSharp]) into a call to that stand-in. The stand-ins take the same arguments (an instance member's
// instance first), so only the call instruction's target changes: same stack, same IL size, same sequence points.
// Why: TorchSharp drops Scalars it creates inside these members while libtorch still reads them, and a
// finalizer can free them mid-call (see FinalizerSafeTorch). Running it twice changes nothing.
if (args.Length < 2)
{
    Console.Error.WriteLine("usage: KeepAliveWeaver ASSEMBLY REPLACEMENTS [SEARCH_DIR ...]");
    return 2;
}
string target = Path.GetFullPath(args[0]), replacementsPath = Path.GetFullPath(args[1]);
const string ReplacementType = "GuidedDiffusion.Runtime.FinalizerSafeTorch";
const string AttributeType = "GuidedDiffusion.Runtime.ReplacesTorchSharpAttribute";

var resolver = new DefaultAssemblyResolver();
foreach (var dir in args.Skip(2).Append(Path.GetDirectoryName(target)!).Append(Path.GetDirectoryName(replacementsPath)!).Distinct())
    if (Directory.Exists(dir)) resolver.AddSearchDirectory(dir);

// The stand-ins, keyed by the member they replace: "DeclaringType::name(param types)".
var replacements = new Dictionary<string, MethodDefinition>(StringComparer.Ordinal);
byte[] replacementsBytes = File.ReadAllBytes(replacementsPath);  // read from memory: the target may be this very file
using (var replacementsModule = ModuleDefinition.ReadModule(new MemoryStream(replacementsBytes), new ReaderParameters { AssemblyResolver = resolver }))
{
    var type = replacementsModule.GetType(ReplacementType)
        ?? throw new InvalidOperationException($"{replacementsPath} has no {ReplacementType}");
    foreach (var method in type.Methods)
    {
        var attribute = method.CustomAttributes.FirstOrDefault(a => a.AttributeType.FullName == AttributeType);
        if (attribute is null) continue;
        var declaring = (TypeReference)attribute.ConstructorArguments[0].Value;
        var member = (string)attribute.ConstructorArguments[1].Value;
        bool instance = attribute.Properties.Any(p => p.Name == "Instance" && (bool)p.Argument.Value);
        var parameters = method.Parameters.Skip(instance ? 1 : 0).Select(p => p.ParameterType.FullName);
        replacements.Add(Key(declaring.FullName, member, parameters), method);
    }
}

bool hasSymbols = File.Exists(Path.ChangeExtension(target, ".pdb"));
byte[] bytes = File.ReadAllBytes(target);
int rewritten = 0;
using (var module = ModuleDefinition.ReadModule(new MemoryStream(bytes), new ReaderParameters
{
    AssemblyResolver = resolver,
    ReadSymbols = hasSymbols,
    SymbolReaderProvider = hasSymbols ? new PortablePdbReaderProvider() : null,
    SymbolStream = hasSymbols ? new MemoryStream(File.ReadAllBytes(Path.ChangeExtension(target, ".pdb"))) : null,
}))
{
    var imported = new Dictionary<MethodDefinition, MethodReference>();
    foreach (var type in module.GetTypes())
    {
        if (type.FullName == ReplacementType) continue;  // the stand-ins call the real members
        foreach (var method in type.Methods.Where(m => m.HasBody))
            foreach (var instruction in method.Body.Instructions)
            {
                if (instruction.OpCode.Code is not (Code.Call or Code.Callvirt) || instruction.Operand is not MethodReference called) continue;
                if (called.DeclaringType.Scope.Name is not ("TorchSharp" or "TorchSharp.dll")) continue;
                // Match on the definition's parameter types: a generic instance's would read !0.
                var key = Key(called.DeclaringType.FullName, called.Name, called.Parameters.Select(p => p.ParameterType.FullName));
                if (!replacements.TryGetValue(key, out var replacement)) continue;
                if (!imported.TryGetValue(replacement, out var reference))
                    imported[replacement] = reference = module.ImportReference(replacement);
                instruction.OpCode = OpCodes.Call;
                instruction.Operand = reference;
                rewritten++;
            }
    }
    if (rewritten > 0)
    {
        var output = new MemoryStream();
        var symbols = hasSymbols ? new MemoryStream() : null;
        module.Write(output, new WriterParameters
        {
            WriteSymbols = hasSymbols,
            SymbolWriterProvider = hasSymbols ? new PortablePdbWriterProvider() : null,
            SymbolStream = symbols,
        });
        File.WriteAllBytes(target + ".woven", output.ToArray());
        if (symbols is not null) File.WriteAllBytes(Path.ChangeExtension(target, ".pdb") + ".woven", symbols.ToArray());
    }
}
if (rewritten > 0)
{
    File.Move(target + ".woven", target, overwrite: true);
    if (hasSymbols) File.Move(Path.ChangeExtension(target, ".pdb") + ".woven", Path.ChangeExtension(target, ".pdb"), overwrite: true);
}
Console.WriteLine($"KeepAliveWeaver: {Path.GetFileName(target)}: {rewritten} call(s) to Scalar-dropping TorchSharp members rewritten");
return 0;

static string Key(string type, string name, IEnumerable<string> parameters) => $"{type}::{name}({string.Join(",", parameters)})";
