using Mono.Cecil;
using Mono.Cecil.Cil;

// KeepAliveWeaver ASSEMBLY REPLACEMENTS [SEARCH_DIR ...]
//
// Rewrites, in ASSEMBLY (in place, its portable PDB with it), every call to a TorchSharp member that has a
// stand-in in REPLACEMENTS (GuidedDiffusion.dll: the methods of GuidedDiffusion.Runtime.FinalizerSafeTorch marked
// [ReplacesTorchSharp]) into a call to that stand-in. The stand-ins take the same arguments (an instance member's
// instance first), so only the call instruction's target changes: same stack, same IL size, same sequence points.
// Why: TorchSharp drops Scalars it creates inside these members while libtorch still reads them, and a
// finalizer can free them mid-call (see FinalizerSafeTorch). Every other call to a TorchSharp method with object
// arguments goes through a generated wrapper that keeps those arguments alive until the call returns (a temporary
// tensor outside a dispose scope has the same race; see KeepAliveWrappers). Running it twice changes nothing.
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
int rewritten = 0, wrapped = 0;
using (var module = ModuleDefinition.ReadModule(new MemoryStream(bytes), new ReaderParameters
{
    AssemblyResolver = resolver,
    ReadSymbols = hasSymbols,
    SymbolReaderProvider = hasSymbols ? new PortablePdbReaderProvider() : null,
    SymbolStream = hasSymbols ? new MemoryStream(File.ReadAllBytes(Path.ChangeExtension(target, ".pdb"))) : null,
}))
{
    var imported = new Dictionary<MethodDefinition, MethodReference>();
    var keepAlive = new KeepAliveWrappers(module);
    foreach (var type in module.GetTypes().ToList())
    {
        // The stand-ins call the real members and hold their arguments; the wrappers are what a rerun added.
        if (type.FullName == ReplacementType || type.FullName == KeepAliveWrappers.HolderName) continue;
        foreach (var method in type.Methods.Where(m => m.HasBody))
            foreach (var instruction in method.Body.Instructions)
            {
                if (instruction.OpCode.Code is not (Code.Call or Code.Callvirt) || instruction.Operand is not MethodReference called) continue;
                if (called.DeclaringType.Scope.Name is not ("TorchSharp" or "TorchSharp.dll")) continue;
                // Match on the definition's parameter types: a generic instance's would read !0.
                var key = Key(called.DeclaringType.FullName, called.Name, called.Parameters.Select(p => p.ParameterType.FullName));
                MethodReference? redirect = null;
                if (replacements.TryGetValue(key, out var replacement))
                {
                    if (!imported.TryGetValue(replacement, out redirect))
                        imported[replacement] = redirect = module.ImportReference(replacement);
                }
                else if ((redirect = keepAlive.Wrap(instruction, called)) is not null) wrapped++;
                if (redirect is null) continue;
                instruction.OpCode = OpCodes.Call;
                instruction.Operand = redirect;
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
Console.WriteLine($"KeepAliveWeaver: {Path.GetFileName(target)}: {rewritten - wrapped} call(s) to Scalar-dropping TorchSharp members "
    + $"rewritten, {wrapped} other TorchSharp call(s) given keep-alive wrappers");
return 0;

static string Key(string type, string name, IEnumerable<string> parameters) => $"{type}::{name}({string.Join(",", parameters)})";

/// <summary>
/// Static wrappers, one per TorchSharp method (and call kind) called with object arguments: each calls the method
/// and then passes every object argument (the instance included) to GC.KeepAlive, so a tensor that nothing else
/// references — a temporary outside any dispose scope — cannot be finalized while libtorch reads it. Skipped:
/// constructors, non-public members, generic methods and methods of generic types, by-reference parameters,
/// value-type instances, and calls behind a constrained. or tail. prefix (their IL cannot move into another
/// method unchanged).
/// </summary>
sealed class KeepAliveWrappers(ModuleDefinition module)
{
    public const string HolderName = "<TorchSharpKeepAlive>";
    private readonly Dictionary<string, MethodDefinition> _wrappers = new(StringComparer.Ordinal);
    private TypeDefinition? _holder;
    private MethodReference? _gcKeepAlive;

    public MethodReference? Wrap(Instruction call, MethodReference called)
    {
        if (called.HasGenericParameters || called is GenericInstanceMethod || called.DeclaringType is GenericInstanceType) return null;
        // Constructors (base-constructor calls) and non-public members (protected base members) stay where they are.
        if (called.Name is ".ctor" or ".cctor" || !IsPublic(called)) return null;
        if (called.DeclaringType.IsValueType || called.CallingConvention != MethodCallingConvention.Default) return null;
        if (call.Previous?.OpCode.Code is Code.Constrained or Code.Tail) return null;
        if (called.Parameters.Any(p => p.ParameterType.IsByReference || p.ParameterType.IsPointer || p.ParameterType.IsGenericParameter)) return null;
        if (called.ReturnType.IsByReference || called.ReturnType.IsGenericParameter) return null;
        bool anyObject = called.HasThis || called.Parameters.Any(p => IsObject(p.ParameterType));
        if (!anyObject) return null;
        string key = call.OpCode.Code + " " + called.FullName;
        if (_wrappers.TryGetValue(key, out var existing)) return existing;

        _holder ??= module.GetType(HolderName) ?? AddHolder();
        _gcKeepAlive ??= new MethodReference("KeepAlive", module.TypeSystem.Void,
            new TypeReference("System", "GC", module, module.TypeSystem.CoreLibrary)) { HasThis = false, Parameters = { new ParameterDefinition(module.TypeSystem.Object) } };
        var wrapper = new MethodDefinition($"{called.Name}_{_holder.Methods.Count}",
            MethodAttributes.Assembly | MethodAttributes.Static | MethodAttributes.HideBySig, called.ReturnType);
        var objects = new List<ParameterDefinition>();
        if (called.HasThis)
        {
            var self = new ParameterDefinition("self", ParameterAttributes.None, called.DeclaringType);
            wrapper.Parameters.Add(self);
            objects.Add(self);
        }
        foreach (var p in called.Parameters)
        {
            var parameter = new ParameterDefinition(p.Name, ParameterAttributes.None, p.ParameterType);
            wrapper.Parameters.Add(parameter);
            if (IsObject(p.ParameterType)) objects.Add(parameter);
        }
        var il = wrapper.Body.GetILProcessor();
        foreach (var p in wrapper.Parameters) il.Emit(OpCodes.Ldarg, p);
        il.Emit(call.OpCode.Code == Code.Callvirt ? OpCodes.Callvirt : OpCodes.Call, called);
        VariableDefinition? result = null;
        if (called.ReturnType.MetadataType != MetadataType.Void)
        {
            result = new VariableDefinition(called.ReturnType);
            wrapper.Body.Variables.Add(result);
            il.Emit(OpCodes.Stloc, result);
        }
        foreach (var p in objects)
        {
            il.Emit(OpCodes.Ldarg, p);
            il.Emit(OpCodes.Call, _gcKeepAlive);
        }
        if (result is not null) il.Emit(OpCodes.Ldloc, result);
        il.Emit(OpCodes.Ret);
        _holder.Methods.Add(wrapper);
        _wrappers[key] = wrapper;
        return wrapper;
    }

    private static bool IsPublic(MethodReference called)
    {
        MethodDefinition? definition;
        try { definition = called.Resolve(); }
        catch (AssemblyResolutionException) { return false; }
        if (definition is null || !definition.IsPublic) return false;
        for (var type = definition.DeclaringType; type is not null; type = type.DeclaringType)
            if (!(type.IsPublic || type.IsNestedPublic)) return false;
        return true;
    }

    // Reference types other than strings: tensors, Scalars, modules, generators, arrays and lists of tensors.
    private static bool IsObject(TypeReference type) =>
        !type.IsValueType && !type.IsGenericParameter && !type.IsByReference && !type.IsPointer && type.MetadataType != MetadataType.String;

    private TypeDefinition AddHolder()
    {
        var holder = new TypeDefinition("", HolderName,
            TypeAttributes.NotPublic | TypeAttributes.Abstract | TypeAttributes.Sealed | TypeAttributes.BeforeFieldInit,
            module.TypeSystem.Object);
        module.Types.Add(holder);
        return holder;
    }
}
